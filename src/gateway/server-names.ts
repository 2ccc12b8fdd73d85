/**
 * The names the gateway's generated server certificate carries: `gateway.tls.server_names`, plus — when the
 * gateway listens on every interface (`0.0.0.0` / `::`) — this machine's host name and its non-loopback
 * addresses, so agents can dial an appliance by the address DHCP gave it without any configuration. The
 * certificate is issued again at every start, so a new address is picked up by a restart. Agents trust the CA,
 * not this certificate, so re-issuing it never breaks them.
 */
import { hostname, type NetworkInterfaceInfo, networkInterfaces } from "node:os";

export interface HostIdentity {
  hostname: string;
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>;
}

export function certificateNames(
  listenHost: string,
  serverNames: readonly string[],
  host: HostIdentity = { hostname: hostname(), interfaces: networkInterfaces() },
): string[] {
  const names = new Set(serverNames);
  if (listenHost === "0.0.0.0" || listenHost === "::" || listenHost === "") {
    if (host.hostname) names.add(host.hostname);
    for (const list of Object.values(host.interfaces)) {
      for (const a of list ?? []) {
        // link-local IPv6 addresses need a zone to be dialed: not useful in a certificate
        if (!a.internal && !(a.family === "IPv6" && a.address.toLowerCase().startsWith("fe80:")))
          names.add(a.address);
      }
    }
  }
  return [...names];
}
