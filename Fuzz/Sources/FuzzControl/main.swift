import Foundation
import FuzzSupport
import TunnelCore

/// tunnelctl's requests as the control socket receives them: decoded from JSON, then
/// validated and applied to the overlay as the control core does (`spec.tunnel()`,
/// `ControlRequest.forwardingKey`, the overlay's add and delete). A refusal is one line;
/// an accepted change still builds a snapshot that holds it; and a tunnel or forwarding
/// entry is accepted at run time exactly when the configuration file accepts it.
///
/// An input is the JSON text of one request.
let world = World()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let json = Data(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    guard let request = try? JSONDecoder().decode(ControlRequest.self, from: json) else { return 0 }
    do {
        let again = try JSONDecoder().decode(ControlRequest.self, from: JSONEncoder().encode(request))
        expect(again == request, "\(request) came back from its JSON as \(again)")
    } catch {
        expect(false, "\(request) does not survive its own JSON: \(error)")
    }
    var overlay = world.newOverlay()
    switch request {
    case .tunnelAdd(let spec):
        let added = outcome { () throws -> Tunnel in
            let tunnel = try spec.tunnel()
            _ = try overlay.addTunnel(tunnel, nowMs: 0)
            return tunnel
        }
        if let tunnel = added {
            expect(overlay.tunnel(named: tunnel.name) == tunnel, "tunnel \(tunnel.name) added but not there")
            checkSnapshot(of: overlay)
            _ = outcome { try overlay.deleteTunnel(named: tunnel.name, nowMs: 0) }
            checkSnapshot(of: overlay)
            expect(overlay.tunnels == world.overlay.tunnels, "adding and deleting \(tunnel.name) left the tunnels changed")
        }
        if let line = yamlLine(spec) {
            checkSameVerdict(runtime: added != nil, file: World.yaml.replacing("forwarding:\n", with: line + "forwarding:\n"))
        }
    case .tunnelDelete(let name):
        if outcome({ try overlay.deleteTunnel(named: name, nowMs: 0) }) != nil {
            expect(overlay.tunnel(named: name) == nil && !overlay.forwarding.values.contains(name)
                   && !overlay.flood.values.contains { $0.contains(name) }, "tunnel \(name) deleted but still referenced")
            checkSnapshot(of: overlay)
        }
    case let .forwardingAdd(segment, mac, tunnel):
        let added = outcome { () throws -> (VNI, MACAddress) in
            let (vni, address) = try ControlRequest.forwardingKey(segment: segment, mac: mac)
            try overlay.addForwarding(segment: vni, mac: address, tunnel: tunnel)
            return (vni, address)
        }
        if let (vni, address) = added {
            expect(forwarded(vni, address, in: overlay) == tunnel, "\(address) in \(vni) added but not forwarded to \(tunnel)")
            checkSnapshot(of: overlay, routes: (vni, address))
        }
        if let mac = yamlString(mac), let tunnel = yamlString(tunnel) {
            let line = "  - { segment: \(segment), mac: \(mac), tunnel: \(tunnel) }\n"
            checkSameVerdict(runtime: added != nil, file: World.yaml.replacing("flood:\n", with: line + "flood:\n"))
        }
    case let .forwardingDelete(segment, mac):
        if let key = outcome({ try ControlRequest.forwardingKey(segment: segment, mac: mac) }),
           outcome({ try overlay.deleteForwarding(segment: key.0, mac: key.1) }) != nil {
            expect(forwarded(key.0, key.1, in: overlay) == nil, "\(key) deleted but still there")
            checkSnapshot(of: overlay)
        }
    case let .floodAdd(segment, tunnel):
        if outcome({ () throws -> Void in _ = try overlay.addFlood(segment: try ControlRequest.segmentVNI(segment), tunnel: tunnel) }) != nil {
            expect(overlay.floodList(VNI(segment)!).last == tunnel, "\(tunnel) added to the flood list of \(segment) but not there")
            checkSnapshot(of: overlay)
        }
    case let .floodDelete(segment, tunnel):
        if outcome({ () throws -> Void in _ = try overlay.deleteFlood(segment: try ControlRequest.segmentVNI(segment), tunnel: tunnel) }) != nil {
            expect(!overlay.floodList(VNI(segment)!).contains(tunnel), "\(tunnel) deleted from the flood list of \(segment) but still there")
            checkSnapshot(of: overlay)
        }
    case .tunnelShow, .forwardingShow, .floodShow, .neighborShow, .neighborFlush, .pending:
        break
    }
    return 0
}

/// The result of a command step, or `nil` when it was refused with a one-line reason.
func outcome<T>(_ step: () throws -> T) -> T? {
    do {
        return try step()
    } catch {
        let text = "\(error)"
        expect(!text.isEmpty && !text.contains(where: \.isNewline), "a refusal that is not one line: \(text.debugDescription)")
        return nil
    }
}

/// The tunnel of the static entry for `mac` in `segment`.
func forwarded(_ segment: VNI, _ mac: MACAddress, in overlay: Overlay) -> String? {
    overlay.forwarding.first { $0.key.segment == segment && $0.key.mac == mac }?.value
}

/// The overlay still makes a snapshot (every tunnel's UDP port fits the uplink's table)
/// that holds all of it, and it routes `key` when given.
func checkSnapshot(of overlay: Overlay, routes key: (segment: VNI, mac: MACAddress)? = nil) {
    let snapshot = ForwardingSnapshot(overlay.plan())
    checkSnapshot(snapshot, of: overlay)
    guard let key else { return }
    withExtendedLifetime(snapshot) {
        let view = snapshot.view.pointee
        guard let segment = view.segment(vni: key.segment), let slot = view.tunnel(segment: segment, mac: key.mac) else {
            return expect(false, "\(key) is not in the snapshot")
        }
        expect(tunnel(at: slot, of: overlay, in: view) != nil, "\(key) routed to slot \(slot.rawValue), no tunnel's")
    }
}

func checkSameVerdict(runtime: Bool, file yaml: String) {
    let file = Result { () throws(ConfigurationError) in try Configuration(yaml: yaml) }
    if case .failure(let error) = file {
        expect(!runtime, "accepted at run time, refused by the configuration file: \(error)")
    } else {
        expect(runtime, "refused at run time, accepted by the configuration file:\n\(yaml)")
    }
}

/// The tunnel as an item of the file's `tunnels` list, when its text can be written
/// there unchanged.
func yamlLine(_ spec: TunnelSpec) -> String? {
    guard let name = yamlString(spec.name), let type = yamlString(spec.type), let remote = yamlString(spec.remote) else {
        return nil
    }
    var fields = ["name: \(name)", "type: \(type)", "remote: \(remote)", "vni: \(spec.vni)"]
    if let port = spec.dstPort { fields.append("dst_port: \(port)") }
    if let ttl = spec.ttl { fields.append("ttl: \(ttl)") }
    if let df = spec.df { fields.append("df: \(df)") }
    if let flowID = spec.flowID { fields.append("flow_id: \(flowID)") }
    return "  - { \(fields.joined(separator: ", ")) }\n"
}

/// A double-quoted YAML scalar holding `text`, for printable ASCII text (elsewhere YAML
/// would fold or normalise some characters).
func yamlString(_ text: String) -> String? {
    guard text.unicodeScalars.allSatisfy({ (0x20...0x7E).contains($0.value) }) else { return nil }
    return "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
}
