/** `.proto` files are imported as text (`with { type: "text" }`) so the compiled binary embeds them. */
declare module "*.proto" {
  const text: string;
  export default text;
}
