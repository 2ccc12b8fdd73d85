// Files imported for embedding (scripts/gen-embeds.ts): executables as paths, SQL as text.
declare module "*/nats-server" {
  const path: string;
  export default path;
}
declare module "*/wireguard-go" {
  const path: string;
  export default path;
}
declare module "*.sql" {
  const text: string;
  export default text;
}
