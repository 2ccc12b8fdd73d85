/** Realistic telemetry payloads for simulated agents and probes. Returns the payload and its sample count. */
import { randomUUID } from "node:crypto";
import type { TelemetryKind } from "../bus/telemetry.ts";
import { encodePayload } from "../protocol/payload.ts";

const DEVICES = ["sda1", "sdb1", "nvme0n1p2"];
const IFACES = ["eth0", "eth1", "wg0"];
const LOG_SOURCES = ["journald", "syslog", "/var/log/nginx/error.log", "sshd"];
const MESSAGES = [
  "Accepted publickey for deploy from 10.0.0.12 port 51122 ssh2",
  "Started Daily apt upgrade and clean activities.",
  "upstream timed out (110: Connection timed out) while reading response header",
  "Out of memory: Killed process 1234 (java) total-vm:4123456kB",
  "CRON[2211]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
];

export interface SimHost {
  hostname: string;
  /** cumulative counters, advanced on each batch */
  counters: { disk: number; net: number };
  targets: string[];
}

export function simHost(i: number): SimHost {
  return {
    hostname: `sim-host-${String(i).padStart(5, "0")}`,
    counters: { disk: 1e9 + i * 1e6, net: 5e8 + i * 1e6 },
    targets: Array.from({ length: 4 }, () => randomUUID()),
  };
}

const r = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
const round = (x: number) => Math.round(x * 100) / 100;

export function makePayload(
  kind: TelemetryKind,
  host: SimHost,
  samples: number,
  now = Date.now(),
): { bytes: Uint8Array; samples: number } {
  switch (kind) {
    case "metrics": {
      const system = [];
      const disks = [];
      const networks = [];
      for (let i = 0; i < samples; i++) {
        const t = now - (samples - i) * 1000;
        const slot = i % 10;
        if (slot === 8) {
          host.counters.disk += Math.floor(r(1e4, 1e6));
          disks.push({
            time_unix_ms: t,
            device: DEVICES[i % DEVICES.length]!,
            mountpoint: "/",
            total_bytes: 512e9,
            used_bytes: Math.floor(r(100e9, 400e9)),
            usage_percent: round(r(20, 80)),
            read_bytes: host.counters.disk,
            write_bytes: host.counters.disk * 2,
            read_ops: Math.floor(host.counters.disk / 4096),
            write_ops: Math.floor(host.counters.disk / 2048),
            read_latency: round(r(0.1, 5)),
            write_latency: round(r(0.1, 8)),
          });
        } else if (slot === 9) {
          host.counters.net += Math.floor(r(1e4, 1e7));
          networks.push({
            time_unix_ms: t,
            interface: IFACES[i % IFACES.length]!,
            rx_bytes: host.counters.net,
            tx_bytes: Math.floor(host.counters.net / 3),
            rx_packets: Math.floor(host.counters.net / 900),
            tx_packets: Math.floor(host.counters.net / 1200),
            rx_errors: 0,
            tx_errors: 0,
          });
        } else {
          const user = r(1, 60);
          const sys = r(0.5, 15);
          system.push({
            time_unix_ms: t,
            cpu_usage: round(user + sys),
            cpu_user: round(user),
            cpu_system: round(sys),
            cpu_iowait: round(r(0, 5)),
            load_avg_1: round(r(0, 4)),
            load_avg_5: round(r(0, 3)),
            load_avg_15: round(r(0, 2)),
            mem_total: 16e9,
            mem_used: Math.floor(r(4e9, 12e9)),
            mem_available: Math.floor(r(2e9, 8e9)),
            mem_cached: Math.floor(r(1e9, 4e9)),
            swap_used: 0,
          });
        }
      }
      return { bytes: encodePayload("metrics", { system, disks, networks }), samples };
    }
    case "logs": {
      const entries = Array.from({ length: samples }, (_, i) => ({
        time_unix_ms: now - (samples - i) * 100,
        level: 1 + (i % 6),
        source: LOG_SOURCES[i % LOG_SOURCES.length]!,
        message: MESSAGES[i % MESSAGES.length]!,
        fields: { host: host.hostname, pid: String(1000 + (i % 50)) },
      }));
      return { bytes: encodePayload("logs", { entries }), samples };
    }
    case "inventory": {
      const packages = Array.from({ length: samples }, (_, i) => ({
        name: `pkg-${i}`,
        version: `1.${i % 10}.${i % 7}`,
        arch: "amd64",
        manager: "dpkg",
      }));
      return {
        bytes: encodePayload("inventory", {
          time_unix_ms: now,
          os: {
            hostname: host.hostname,
            name: "debian",
            version: "12.7",
            kernel: "6.1.0-25-amd64",
            arch: "amd64",
            boot_time_unix_ms: now - 86_400_000,
          },
          packages,
          services: [
            { name: "sshd", state: "running", enabled: true },
            { name: "nginx", state: "running", enabled: true },
          ],
          ports: [{ protocol: "tcp", address: "0.0.0.0", port: 22, process: "sshd", pid: 612 }],
        }),
        samples,
      };
    }
    case "scans": {
      const tests = ["ping", "http", "tcp", "tls", "dns"];
      const results = Array.from({ length: samples }, (_, i) => {
        const ok = Math.random() > 0.05;
        return {
          time_unix_ms: now - (samples - i) * 1000,
          target_id: host.targets[i % host.targets.length]!,
          test_type: tests[i % tests.length]!,
          success: ok,
          error_message: ok ? "" : "connection timed out",
          latency_ms: round(r(1, 120)),
          packet_loss: ok ? 0 : 100,
          result_json: JSON.stringify({ status: ok ? 200 : 0 }),
        };
      });
      return { bytes: encodePayload("scans", { results }), samples };
    }
    case "snmp": {
      const oids = [
        ["1.3.6.1.2.1.1.3.0", "sysUpTime.0", "timeticks"],
        ["1.3.6.1.2.1.2.2.1.10.1", "ifInOctets.1", "counter32"],
        ["1.3.6.1.2.1.2.2.1.16.1", "ifOutOctets.1", "counter32"],
      ] as const;
      const samplesArr = Array.from({ length: samples }, (_, i) => {
        const [oid, name, type] = oids[i % oids.length]!;
        return {
          time_unix_ms: now - (samples - i) * 1000,
          target_id: host.targets[i % host.targets.length]!,
          oid,
          oid_name: name,
          value_type: type,
          value_numeric: Math.floor(r(0, 4e9)),
        };
      });
      return { bytes: encodePayload("snmp", { samples: samplesArr }), samples };
    }
  }
}
