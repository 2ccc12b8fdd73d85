import { expect, test } from "bun:test";
import type { NetworkInterfaceInfo } from "node:os";
import { certificateNames } from "../../src/gateway/server-names.ts";

const iface = (address: string, family: "IPv4" | "IPv6", internal = false) =>
  ({ address, family, internal, netmask: "", mac: "", cidr: null }) as unknown as NetworkInterfaceInfo;
const host = {
  hostname: "secumon-appliance",
  interfaces: {
    lo: [iface("127.0.0.1", "IPv4", true), iface("::1", "IPv6", true)],
    ens3: [iface("192.0.2.10", "IPv4"), iface("2001:db8::10", "IPv6"), iface("fe80::1", "IPv6")],
  },
};

test("listening on every interface: the configured names, the host name and every routable address", () => {
  expect(certificateNames("0.0.0.0", ["localhost", "127.0.0.1"], host)).toEqual([
    "localhost",
    "127.0.0.1",
    "secumon-appliance",
    "192.0.2.10",
    "2001:db8::10",
  ]);
  expect(certificateNames("::", ["collector.example.org"], host)).toContain("192.0.2.10");
});

test("listening on one address: only the configured names", () => {
  expect(certificateNames("127.0.0.1", ["localhost", "127.0.0.1"], host)).toEqual(["localhost", "127.0.0.1"]);
  expect(certificateNames("192.0.2.10", ["collector.example.org"], host)).toEqual(["collector.example.org"]);
});

test("a name configured and also discovered appears once", () => {
  expect(certificateNames("0.0.0.0", ["192.0.2.10"], host).filter((n) => n === "192.0.2.10")).toHaveLength(1);
});
