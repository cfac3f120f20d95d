import ArgumentParser
import Foundation

@main
struct TunnelCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnelctl",
        abstract: "Inspect a running tunnelfwd.",
        discussion: "The forwarder is found by its EAL --file-prefix, through its telemetry socket /var/run/dpdk/PREFIX/dpdk_telemetry.v2.",
        subcommands: [Stats.self, Ports.self])
}

struct Target: ParsableArguments {
    @Option(name: .customLong("file-prefix"), help: "The --file-prefix the forwarder's EAL was started with.")
    var filePrefix = "rte"

    @Flag(help: "Print the raw JSON reply.")
    var json = false

    func connect() throws -> TelemetryClient {
        do { return try TelemetryClient(filePrefix: filePrefix) } catch { throw ValidationError("\(error)") }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Packet counters: totals, drops by reason, per core.")
    @OptionGroup var target: Target

    func run() throws {
        let client = try target.connect()
        defer { client.close() }
        let stats = try client.query("/tunnelfwd/stats")
        if target.json { return printJSON(stats) }
        guard let dict = stats as? [String: Any] else { throw ClientError("unexpected stats reply") }
        print(Table.counters(dict, title: "total"))
        if let perCore = dict["per_core"] as? [String: Any] {
            for lcore in perCore.keys.sorted(by: { Int($0) ?? 0 < Int($1) ?? 0 }) {
                if let core = perCore[lcore] as? [String: Any] { print(Table.counters(core, title: "lcore \(lcore)")) }
            }
        }
    }
}

struct Ports: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ports with their role and DPDK's per-port statistics.")
    @OptionGroup var target: Target

    func run() throws {
        let client = try target.connect()
        defer { client.close() }
        guard let roles = try client.query("/tunnelfwd/ports") as? [String: Any] else { throw ClientError("unexpected ports reply") }
        var all: [String: Any] = [:]
        for id in roles.keys.sorted(by: { Int($0) ?? 0 < Int($1) ?? 0 }) {
            var entry = roles[id] as? [String: Any] ?? [:]
            entry["stats"] = try client.query("/ethdev/stats,\(id)")
            all[id] = entry
        }
        if target.json { return printJSON(all) }
        for id in all.keys.sorted(by: { Int($0) ?? 0 < Int($1) ?? 0 }) {
            let entry = all[id] as? [String: Any] ?? [:]
            let stats = entry["stats"] as? [String: Any] ?? [:]
            var line = "port \(id) \(entry["name"] ?? "?") \(entry["role"] ?? "?") \(entry["mac"] ?? "")"
            if let segment = entry["segment"] { line += " segment \(segment)" }
            if let vlan = entry["vlan"] { line += " vlan \(vlan)" }
            print(line)
            for key in ["ipackets", "opackets", "ibytes", "obytes", "imissed", "ierrors", "oerrors", "rx_nombuf"] {
                print("  \(key.padding(toLength: 12, withPad: " ", startingAt: 0)) \(stats[key] ?? 0)")
            }
        }
    }
}

enum Table {
    static func counters(_ dict: [String: Any], title: String) -> String {
        var lines = ["\(title):"]
        for key in dict.keys.sorted() where !(dict[key] is [String: Any]) {
            lines.append("  \(key.padding(toLength: 20, withPad: " ", startingAt: 0)) \(dict[key]!)")
        }
        if let dropped = dict["dropped"] as? [String: Any] {
            lines.append("  dropped:")
            for key in dropped.keys.sorted() {
                lines.append("    \(key.padding(toLength: 18, withPad: " ", startingAt: 0)) \(dropped[key]!)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

func printJSON(_ value: Any) {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}
