import ArgumentParser
import Foundation
import TunnelCore

@main
struct TunnelCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnelctl",
        abstract: "Inspect and change a running tunnelfwd.",
        discussion: """
            The forwarder is found by its EAL --file-prefix: counters through its telemetry socket \
            /var/run/dpdk/PREFIX/dpdk_telemetry.v2, changes through /var/run/dpdk/PREFIX/tunnelfwd.sock.
            """,
        subcommands: [Stats.self, Ports.self, TunnelCommand.self, ForwardingCommand.self, FloodCommand.self, NeighborCommand.self,
                      Pending.self])

    /// `--file-prefix P` and `--json` belong to every subcommand; given before the
    /// subcommand (`tunnelctl --file-prefix P tunnel add ...`) they are moved after it.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var hoisted: [String] = []
        while let first = arguments.first, first.hasPrefix("-") {
            if first == "--file-prefix", arguments.count >= 2 {
                hoisted += arguments.prefix(2)
                arguments.removeFirst(2)
            } else if first.hasPrefix("--file-prefix=") || first == "--json" {
                hoisted.append(arguments.removeFirst())
            } else {
                break
            }
        }
        // Moved after an unknown subcommand, the options would be what the parser
        // complains about; the subcommand is.
        if let problem = subcommandProblem(arguments, optionsGiven: !hoisted.isEmpty) {
            FileHandle.standardError.write(Data("tunnelctl: \(problem)\n".utf8))
            Foundation.exit(ExitCode.failure.rawValue)
        }
        do {
            var command = try parseAsRoot(arguments + hoisted)
            try command.run()
        } catch {
            // Help and --version print as ArgumentParser does; every failure, a mistyped
            // option included, is one line and exit status 1.
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }
            let message = message(for: error)
            if !message.isEmpty { FileHandle.standardError.write(Data("tunnelctl: \(message)\n".utf8)) }
            Foundation.exit(code == .validationFailure ? ExitCode.failure.rawValue : code.rawValue)
        }
    }
}

/// Why `arguments` do not start with a subcommand path (`stats`, `tunnel add`), or `nil`.
/// Without options before it, a missing subcommand is left to the parser (it prints the
/// help), and so is everything from an option (`--help`) or `help` on.
func subcommandProblem(_ arguments: [String], optionsGiven: Bool) -> String? {
    var command: ParsableCommand.Type = TunnelCtl.self
    var path = ""
    var rest = arguments[...]
    while !command.configuration.subcommands.isEmpty {
        let subcommands = command.configuration.subcommands
        let expected = "(expected one of: \(subcommands.map { $0._commandName }.joined(separator: ", ")))"
        guard let word = rest.first else {
            return optionsGiven ? "missing subcommand\(path) \(expected)" : nil
        }
        if word.hasPrefix("-") || word == "help" { return nil }
        guard let next = subcommands.first(where: { $0._commandName == word }) else {
            return "unknown subcommand \(ConfigurationText.quote(word))\(path) \(expected)"
        }
        command = next
        path = " of '\(word)'"
        rest = rest.dropFirst()
    }
    return nil
}

/// Runs a control request and prints its reply; a refused one is one line on stderr and
/// exit status 1.
func perform(_ request: ControlRequest, _ target: Target, render: (ControlReply) -> Void = { print($0.message) }) throws {
    let reply: ControlReply
    reply = try ControlClient.send(request, filePrefix: target.filePrefix)
    guard reply.ok else {
        FileHandle.standardError.write(Data("tunnelctl: \(reply.message)\n".utf8))
        throw ExitCode.failure
    }
    if target.json {
        let data = try JSONEncoder.pretty.encode(reply)
        print(String(decoding: data, as: UTF8.self))
    } else {
        render(reply)
    }
}

extension JSONEncoder {
    static var pretty: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}

struct TunnelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tunnel", abstract: "Show, add or delete tunnels.",
                                                    subcommands: [Show.self, Add.self, Del.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every tunnel: format, remote, VNI, origin (static or evpn), next hop and its state.")
        @OptionGroup var target: Target

        func run() throws {
            try perform(.tunnelShow, target) { reply in
                print("NAME                              TYPE    REMOTE           VNI       ORIGIN  NEXT HOP         STATE")
                for row in reply.tunnels ?? [] {
                    print(pad(row.name, 33), pad(row.type, 7), pad(row.remote, 16), pad(String(row.vni), 9), pad(row.origin, 7),
                          pad(row.nextHop, 16), row.state + (row.heldForMs.map { ", withdrawn: goes in \($0) ms" } ?? ""))
                }
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a tunnel; its next hop is resolved at once.")
        @OptionGroup var target: Target
        // Numbers and booleans are taken as text and read by the configuration file's
        // rules (TunnelSpec.parsing), so that tunnelctl refuses what the file refuses, in
        // its words; a value is the next argument even when it starts with '-'.
        @Argument(help: "Tunnel name (1-32 of A-Z a-z 0-9 _ . -).") var name: String
        @Option(help: "vxlan, geneve or nvgre.") var type: String
        @Option(help: "Remote endpoint IPv4 address.") var remote: String
        @Option(parsing: .unconditional, help: "VNI 0-16777215 (VSID for nvgre); also the segment.") var vni: String
        @Option(name: .customLong("dst-port"), parsing: .unconditional, help: "UDP destination port 1-65535 (vxlan, geneve).")
        var dstPort: String?
        @Option(parsing: .unconditional, help: "Outer TTL 1-255 (default 64).") var ttl: String?
        @Option(parsing: .unconditional, help: "Outer DF bit: true or false (default true).") var df: String?
        @Option(name: .customLong("flow-id"), parsing: .unconditional, help: "NVGRE FlowID 0-255 (default 0).") var flowID: String?

        func run() throws {
            try perform(.tunnelAdd(TunnelSpec.parsing(name: name, type: type, remote: remote, vni: vni,
                                                      dstPort: dstPort, ttl: ttl, df: df, flowID: flowID)), target)
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a tunnel with its forwarding entries and flood-list memberships.")
        @OptionGroup var target: Target
        @Argument var name: String

        func run() throws { try perform(.tunnelDelete(name: name), target) }
    }
}

struct ForwardingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forwarding", abstract: "Show, add or delete inner-MAC forwarding entries.",
                                                    subcommands: [Show.self, Add.self, Del.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The inner-MAC forwarding table, sorted by segment and MAC: each entry's tunnel and origin (static, evpn, learnt, local), and for learnt and local ones the time since their MAC was last seen.")
        @OptionGroup var target: Target
        @Option(parsing: .unconditional, help: "Only this segment.") var segment: String?

        func run() throws {
            try perform(.forwardingShow(segment: segment.map(ControlRequest.segment)), target) { reply in
                print("SEGMENT   MAC                TUNNEL                            ORIGIN   SEEN(ms ago)")
                for row in reply.forwarding ?? [] {
                    print(pad(String(row.segment), 9), pad(row.mac, 18), pad(row.tunnel ?? "(access port)", 33), pad(row.origin, 8),
                          row.lastSeenMs.map(String.init) ?? "-")
                }
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forward an inner MAC of a segment to a tunnel.")
        @OptionGroup var target: Target
        @Option(parsing: .unconditional) var segment: String
        @Option var mac: String
        @Option var tunnel: String

        func run() throws {
            try perform(.forwardingAdd(segment: ControlRequest.segment(segment), mac: mac, tunnel: tunnel), target)
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an inner-MAC forwarding entry: static, learnt or local (EVPN entries go when FRR withdraws them).")
        @OptionGroup var target: Target
        @Option(parsing: .unconditional) var segment: String
        @Option var mac: String

        func run() throws { try perform(.forwardingDelete(segment: ControlRequest.segment(segment), mac: mac), target) }
    }
}

struct FloodCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "flood", abstract: "Show or change the flood lists (head-end replication).",
                                                    subcommands: [Show.self, Add.self, Del.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each segment's flood list: its static tunnels, then those EVPN adds.")
        @OptionGroup var target: Target
        @Option(parsing: .unconditional, help: "Only this segment.") var segment: String?

        func run() throws {
            try perform(.floodShow(segment: segment.map(ControlRequest.segment)), target) { reply in
                print("SEGMENT   STATIC                                    EVPN")
                for row in reply.flood ?? [] {
                    print(pad(String(row.segment), 9), pad(row.tunnels.isEmpty ? "-" : row.tunnels.joined(separator: ","), 41),
                          row.evpn.isEmpty ? "-" : row.evpn.joined(separator: ","))
                }
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a tunnel of the segment to its static flood list.")
        @OptionGroup var target: Target
        @Option(parsing: .unconditional) var segment: String
        @Option var tunnel: String

        func run() throws { try perform(.floodAdd(segment: ControlRequest.segment(segment), tunnel: tunnel), target) }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a tunnel out of the segment's static flood list.")
        @OptionGroup var target: Target
        @Option(parsing: .unconditional) var segment: String
        @Option var tunnel: String

        func run() throws { try perform(.floodDelete(segment: ControlRequest.segment(segment), tunnel: tunnel), target) }
    }
}

struct NeighborCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "neighbor", abstract: "Show or flush neighbors.",
                                                    subcommands: [Show.self, Flush.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tunnel-neighbor table: next hop, state, MAC, age, tunnels.")
        @OptionGroup var target: Target
        @Flag(help: "Also list the underlay neighbor table.") var all = false

        func run() throws {
            try perform(.neighborShow(all: all), target) { reply in
                print("NEXT HOP         STATE       MAC                AGE(ms)  TUNNELS")
                for row in reply.neighbors ?? [] {
                    print(pad(row.address, 16), pad(row.state, 11), pad(row.mac ?? "-", 18),
                          pad(row.ageMs.map(String.init) ?? "-", 8), row.tunnels.joined(separator: ","))
                }
                if let underlay = reply.underlay {
                    print("\nUNDERLAY         STATE       MAC                AGE(ms)")
                    for row in underlay {
                        print(pad(row.address, 16), pad(row.state, 11), pad(row.mac ?? "-", 18), row.ageMs)
                    }
                }
            }
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget learnt neighbors; tunnel neighbors are resolved again at once.")
        @OptionGroup var target: Target

        func run() throws { try perform(.neighborFlush, target) }
    }
}

struct Pending: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Packets waiting for a next hop's MAC, per worker and per next hop.")
    @OptionGroup var target: Target

    func run() throws {
        try perform(.pending, target) { reply in
            guard let p = reply.pending else { return }
            print("pending: \(p.total) packet(s); lifetime \(p.lifetimeMs) ms, at most \(p.perCoreLimit) per core and \(p.perNeighborLimit) per next hop")
            for (lcore, n) in p.perCore.sorted(by: { $0.key < $1.key }) { print("  lcore \(lcore): \(n)") }
            for (hop, n) in p.byNextHop.sorted(by: { $0.key < $1.key }) { print("  next hop \(hop): \(n)") }
        }
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

struct Target: ParsableArguments {
    @Option(name: .customLong("file-prefix"), help: "The --file-prefix the forwarder's EAL was started with.")
    var filePrefix = "rte"

    @Flag(help: "Print the raw JSON reply.")
    var json = false

    func connect() throws -> TelemetryClient {
        try TelemetryClient(filePrefix: filePrefix)
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
        // Past 8 lcores the stats reply leaves per_core out: each lcore is asked alone.
        let perCore = dict["per_core"] as? [String: Any]
        for lcore in (dict["lcores"] as? [Int]) ?? [] {
            let core = try perCore?[String(lcore)] ?? client.query("/tunnelfwd/core,\(lcore)")
            if let core = core as? [String: Any] { print(Table.counters(core, title: "lcore \(lcore)")) }
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
            if let mtu = entry["mtu"] { line += " mtu \(mtu)" }
            if let link = entry["link"] { line += " link \(link)" }
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
