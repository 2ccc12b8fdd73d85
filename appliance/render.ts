#!/usr/bin/env bun
/**
 * The appliance's generated files: everything in the image that depends on build options (the collector's
 * config, hostname, network, NTP, boot loader defaults). `appliance/build` runs
 *   bun appliance/render.ts --out DIR [--hostname NAME] [--api-port N] [--grpc-port N] [--ntp "a b"] [--wireguard]
 * and copies DIR over the root filesystem. Static files (units, scripts) live beside this file.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface RenderOptions {
  hostname: string;
  apiPort: number;
  grpcPort: number;
  /** NTP servers; empty = those from DHCP, then Debian's pool. */
  ntp: string[];
  wireguard: boolean;
}

export const DEFAULTS: RenderOptions = {
  hostname: "secumon",
  apiPort: 8080,
  grpcPort: 9443,
  ntp: [],
  wireguard: false,
};

export interface RenderedFile {
  content: string;
  mode: number;
}

/** The image's PostgreSQL: local socket, peer authentication as the `secumon` role (created at first boot). */
export const DATABASE_URL = "postgres://secumon@localhost/secumon?host=/var/run/postgresql";
export const DATA_DIR = "/var/lib/secumon";

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function validate(o: RenderOptions): string[] {
  const problems: string[] = [];
  if (!HOSTNAME.test(o.hostname))
    problems.push(`--hostname ${o.hostname}: use lower-case letters, digits and dashes (1-63)`);
  for (const [name, port] of [
    ["--api-port", o.apiPort],
    ["--grpc-port", o.grpcPort],
  ] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      problems.push(`${name} ${port}: a port is 1..65535`);
  }
  if (o.apiPort === o.grpcPort) problems.push("--api-port and --grpc-port must differ");
  for (const s of o.ntp) {
    if (!/^[A-Za-z0-9.:-]+$/.test(s)) problems.push(`--ntp ${s}: a host name or address`);
  }
  return problems;
}

function collectorYaml(o: RenderOptions): string {
  return `# SecuMon Collector on the appliance. Every key not set here takes its default: see
# /usr/share/doc/secumon-collector/REFERENCE.md. Restart after editing: systemctl restart secumon-collector
data_dir: ${DATA_DIR}

api:
  # the web UI and API, on every interface of the appliance
  host: 0.0.0.0
  port: ${o.apiPort}

gateway:
  # agents and probes connect here (gRPC, mutual TLS; the CA is generated under data_dir on first start)
  host: 0.0.0.0
  grpc_port: ${o.grpcPort}

database:
  # the appliance's PostgreSQL 15 over its Unix socket, peer authentication (no password exists)
  url: "${DATABASE_URL}"

wireguard:
  enabled: ${o.wireguard}

logging:
  level: info
`;
}

function network(): string {
  return `# Every wired interface by DHCP. For a static address, see /usr/share/doc/secumon-collector/appliance.md
# (copy this file to 10-static.network, replace DHCP=yes by Address=/Gateway=/DNS=, networkctl reload).
[Match]
Name=en* eth*

[Network]
DHCP=yes
IPv6AcceptRA=yes

[DHCPv4]
UseNTP=yes
UseHostname=no
`;
}

function timesyncd(o: RenderOptions): string {
  return `# NTP: servers from DHCP first, then these; edit and run systemctl restart systemd-timesyncd
[Time]
NTP=${o.ntp.join(" ")}
FallbackNTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org 2.debian.pool.ntp.org 3.debian.pool.ntp.org
`;
}

/** Boot loader defaults read by grub-mkconfig (update-grub), so kernel updates regenerate a working menu. */
function grubDefaults(): string {
  return `# SecuMon appliance: serial and screen console, short menu. update-grub reads this after every kernel update.
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="SecuMon Collector"
# quiet boot (the kernel's and systemd's messages are in the journal: journalctl -b); systemd still shows failures
GRUB_CMDLINE_LINUX_DEFAULT="quiet systemd.show_status=auto"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=1"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
`;
}

/**
 * The drivers the initramfs carries (initramfs-tools MODULES=list plus a hook that adds these): the disks of the
 * usual hypervisors and of common servers, the file systems of the disk and the live ISO, USB for a live ISO on a
 * stick. They are only carried, not loaded: udev loads the ones the machine has (a module listed in
 * /etc/initramfs-tools/modules would be loaded at every boot). Debian's default (MODULES=most) carries every
 * storage driver: a 42 MB initramfs, slow to unpack on a small VM. Anything else loads from the root file system.
 */
export const INITRAMFS_MODULES = [
  "# KVM, Proxmox, OpenStack",
  "virtio_pci",
  "virtio_blk",
  "virtio_scsi",
  "# IDE/SATA, SCSI disks and CD-ROMs",
  "ata_piix",
  "ata_generic",
  "ahci",
  "sd_mod",
  "sr_mod",
  "nvme",
  "# VMware (PVSCSI, LSI Logic), Hyper-V, Xen",
  "vmw_pvscsi",
  "mptspi",
  "mptsas",
  "hv_vmbus",
  "hv_storvsc",
  "xen_blkfront",
  "# server RAID/HBA",
  "megaraid_sas",
  "mpt3sas",
  "# file systems: the disk (ext4), the live ISO (iso9660, squashfs, overlay)",
  "ext4",
  "crc32c_generic",
  "crc32c_intel",
  "isofs",
  "squashfs",
  "overlay",
  "loop",
  "# a live ISO on a USB stick; a USB keyboard for the emergency shell",
  "xhci_pci",
  "ehci_pci",
  "ohci_pci",
  "uhci_hcd",
  "usb_storage",
  "uas",
  "hid_generic",
  "usbhid",
];

export function render(o: RenderOptions = DEFAULTS): Map<string, RenderedFile> {
  const problems = validate(o);
  if (problems.length) throw new Error(`invalid options:\n  - ${problems.join("\n  - ")}`);
  const files = new Map<string, RenderedFile>();
  const add = (path: string, content: string, mode = 0o644) => files.set(path, { content, mode });
  add("etc/secumon/collector.yaml", collectorYaml(o), 0o640);
  add("etc/hostname", `${o.hostname}\n`);
  add(
    "etc/hosts",
    `127.0.0.1\tlocalhost\n127.0.1.1\t${o.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
  );
  add("etc/systemd/network/20-wired.network", network());
  add("etc/systemd/timesyncd.conf.d/secumon.conf", timesyncd(o));
  add("etc/default/grub.d/secumon.cfg", grubDefaults());
  add(
    "etc/initramfs-tools/conf.d/secumon.conf",
    "# SecuMon appliance: only the drivers of hooks/secumon-drivers (see there); the rest loads from the disk\nMODULES=list\nCOMPRESS=gzip\n",
  );
  add(
    "etc/initramfs-tools/hooks/secumon-drivers",
    `#!/bin/sh
# Drivers carried by the SecuMon appliance's initramfs (MODULES=list in conf.d/secumon.conf); udev loads those the
# machine has. For a disk controller not listed here, add its module and run update-initramfs -u.
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
${INITRAMFS_MODULES.filter((m) => !m.startsWith("#"))
  .map((m) => `manual_add_modules ${m}`)
  .join("\n")}
`,
    0o755,
  );
  add(
    "etc/secumon/appliance.env",
    `# read by the appliance's scripts (banner, upgrade)\nAPPLIANCE_API_PORT=${o.apiPort}\nAPPLIANCE_GRPC_PORT=${o.grpcPort}\n`,
  );
  return files;
}

export function writeOverlay(dir: string, files: Map<string, RenderedFile>): void {
  for (const [path, f] of files) {
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, f.content, { mode: f.mode });
  }
}

export function parseOptions(argv: string[]): { out: string; options: RenderOptions } {
  const o: RenderOptions = { ...DEFAULTS, ntp: [] };
  let out = "";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--out") out = value();
    else if (a === "--hostname") o.hostname = value();
    else if (a === "--api-port") o.apiPort = Number(value());
    else if (a === "--grpc-port") o.grpcPort = Number(value());
    else if (a === "--ntp")
      o.ntp = value()
        .split(/[\s,]+/)
        .filter(Boolean);
    else if (a === "--wireguard") o.wireguard = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!out) throw new Error("--out DIR is required");
  return { out, options: o };
}

if (import.meta.main) {
  try {
    const { out, options } = parseOptions(process.argv.slice(2));
    const files = render(options);
    writeOverlay(out, files);
    console.log(`rendered ${files.size} files into ${out}`);
  } catch (e) {
    console.error(`appliance/render.ts: ${(e as Error).message}`);
    process.exit(2);
  }
}
