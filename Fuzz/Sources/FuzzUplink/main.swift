import FuzzSupport
import TunnelCore

/// The uplink's receive path, as the worker and the control core take it: ARP to the
/// neighbor resolver, tunnel packets through `Decapsulation.classify`, the inner frame's
/// source MAC learnt by the overlay, and delivery with the access port's VLAN tag.
///
/// An input is a sequence of frames, each after a header of two little-endian UInt16s:
/// the milliseconds since the previous frame (the resolver's timers run in between) and
/// the frame's length (the last frame takes what is left).
let world = World()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUplink(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var resolver = world.resolver
    var overlay = world.newOverlay()
    var nowMs: UInt64 = 0
    while let delay = input.integer(UInt16.self), let length = input.integer(UInt16.self) {
        nowMs += UInt64(delay)
        let timed = resolver.tick(nowMs: nowMs)
        checkActions(timed, of: resolver)
        withExactBuffer(input.bytes(upTo: Int(length))) { frame, length in
            if let message = ARPMessage(parsingFrame: frame, length: length) {
                let actions = resolver.receive(message, nowMs: nowMs)
                checkActions(actions, of: resolver)
            }
            let verdict = Decapsulation.classify(frame, length: length, local: world.local,
                                                 ports: world.snapshot.view.pointee.decapsulationPorts)
            checkVerdict(verdict, frame, length)
            if case let .inner(type, vni, innerOffset, innerLength) = verdict {
                learn(from: frame, innerOffset: innerOffset, type: type, vni: vni, into: &overlay)
                deliver(frame + innerOffset, length: innerLength, vni: vni)
            }
        }
    }
    return 0
}

/// The resolver only ever speaks of the tunnel neighbors it was given, and never
/// publishes a MAC that is not a unicast one.
func checkActions(_ actions: [ResolverAction], of resolver: NeighborResolver) {
    expect(resolver.tunnelNeighbors.count == world.resolver.tunnelNeighbors.count, "tunnel neighbors appeared or vanished")
    for action in actions {
        switch action {
        case let .request(target, unicastTo):
            expect(resolver.tunnelNeighbors[target] != nil, "request for \(target), not a tunnel neighbor")
            if let mac = unicastTo { expect(!mac.isMulticast && mac != .zero, "probe to \(mac)") }
        case let .publish(id, mac):
            expect(resolver.tunnelNeighbor(id) != nil, "publish for unknown next hop \(id.rawValue)")
            if let mac { expect(!mac.isMulticast && mac != .zero, "published \(mac)") }
        case let .kernelSet(address, mac):
            expect(resolver.tunnelNeighbors[address] != nil, "kernel entry for \(address), not a tunnel neighbor")
            expect(!mac.isMulticast && mac != .zero, "kernel entry with \(mac)")
        case let .kernelRemove(address):
            expect(resolver.tunnelNeighbors[address] != nil, "kernel removal of \(address), not a tunnel neighbor")
        }
    }
}

/// What each verdict promises about the frame, checked from the bytes with the general
/// checksum (the classifier uses a five-load one for 20-byte headers).
func checkVerdict(_ verdict: DecapsulationVerdict, _ frame: UnsafeRawPointer, _ length: Int) {
    guard case .inner(let type, let vni, let innerOffset, let innerLength) = verdict else {
        if verdict == .badChecksum || verdict == .fragment {
            let ip = frame + HeaderSize.ethernet
            let headerLength = Int(ip.load(as: UInt8.self) & 0x0F) * 4
            let valid = InternetChecksum.checksum(UnsafeRawBufferPointer(start: ip, count: headerLength)) == 0
            expect(valid == (verdict == .fragment), "\(verdict) for a header whose checksum is \(valid ? "" : "in")valid")
        }
        return
    }
    expect(length >= HeaderSize.ethernet + HeaderSize.ipv4 && EthernetFrame.etherType(of: frame) == .ipv4, "inner verdict for a non-IPv4 frame")
    let ip = frame + HeaderSize.ethernet
    let versionAndLength = ip.load(as: UInt8.self)
    let headerLength = Int(versionAndLength & 0x0F) * 4
    let totalLength = Int(UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
    expect(versionAndLength >> 4 == 4 && headerLength >= HeaderSize.ipv4, "inner verdict for IP header byte \(versionAndLength)")
    expect(totalLength >= headerLength && HeaderSize.ethernet + totalLength <= length, "inner verdict for total length \(totalLength) in \(length) bytes")
    expect(InternetChecksum.checksum(UnsafeRawBufferPointer(start: ip, count: headerLength)) == 0, "inner verdict for a bad header checksum")
    expect(UInt32(bigEndian: ip.loadUnaligned(fromByteOffset: 16, as: UInt32.self)) == world.local.rawValue, "inner verdict for another address")
    expect(UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) & 0x3FFF == 0, "inner verdict for a fragment")

    let l4 = HeaderSize.ethernet + headerLength
    let ipProtocol = ip.load(fromByteOffset: 9, as: UInt8.self)
    var tunnelHeader = l4
    if type == .nvgre {
        expect(ipProtocol == IPProtocol.gre.rawValue, "nvgre verdict for protocol \(ipProtocol)")
    } else {
        expect(ipProtocol == IPProtocol.udp.rawValue, "\(type) verdict for protocol \(ipProtocol)")
        let port = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: l4 + 2, as: UInt16.self))
        expect(world.snapshot.view.pointee.decapsulationPorts.type(of: port) == type, "\(type) verdict for UDP port \(port)")
        tunnelHeader += HeaderSize.udp
    }
    expect(innerOffset >= tunnelHeader + 8, "inner frame at \(innerOffset) overlaps the tunnel header at \(tunnelHeader)")
    expect(innerLength >= HeaderSize.ethernet && innerOffset + innerLength == HeaderSize.ethernet + totalLength,
           "inner frame \(innerOffset)+\(innerLength) does not end with the IPv4 packet (\(totalLength) bytes)")
    let vniWord = UInt32(bigEndian: frame.loadUnaligned(fromByteOffset: tunnelHeader + 4, as: UInt32.self))
    expect(vni.rawValue == vniWord >> 8, "vni \(vni) where the header says \(vniWord >> 8)")
}

/// The control core's side of learning: the report a worker sends survives its ring
/// encoding, and the overlay learns a MAC only behind a tunnel of the packet's origin.
func learn(from frame: UnsafeRawPointer, innerOffset: Int, type: EncapsulationType, vni: VNI, into overlay: inout Overlay) {
    let remote = Decapsulation.outerSource(of: frame)
    let report = LearningReport(mac: EthernetFrame.source(of: frame + innerOffset), vni: vni, source: .tunnel(type, remote: remote))
    expect(LearningReport(words: report.words) == report, "\(report) does not survive its ring encoding")
    let learnt = overlay.learn(report, nowMs: 0)
    expect(overlay.learned.count <= world.configuration.learning.maxEntries, "learnt table over its capacity")
    guard let (outcome, effects) = learnt else { return }
    expect(effects.advertise.isEmpty && effects.withdraw.isEmpty && effects.resolve.isEmpty, "learning from a tunnel asked for \(effects)")
    guard outcome != .full else { return }
    let entry = overlay.learned.entries[Overlay.MACKey(segment: vni, mac: report.mac)]
    guard let name = entry?.tunnel, let tunnel = overlay.tunnel(named: name) else {
        return expect(false, "\(outcome) but \(report.mac) is not in the learnt table")
    }
    expect(tunnel.type == type && tunnel.remote == remote && tunnel.vni == vni,
           "\(report.mac) from a \(type) packet of \(remote) learnt behind \(name)")
    // The snapshot built from it routes the MAC to that tunnel, as a learnt entry.
    let snapshot = ForwardingSnapshot(overlay.plan())
    withExtendedLifetime(snapshot) {
        let view = snapshot.view.pointee
        guard let segment = view.segment(vni: vni),
              let route = view.route(key: ForwardingView.key(segment: segment, mac: report.mac)) else {
            return expect(false, "learnt \(report.mac) is not in the snapshot")
        }
        expect(route.learnedSlot == entry?.slot, "learnt \(report.mac) routed to \(route)")
        expect(FuzzSupport.tunnel(at: route.tunnel, of: overlay, in: view)?.name == name,
               "learnt \(report.mac) routed to another tunnel than \(name)")
    }
}

/// Delivery to the segment's access ports, tagged where the port has a VLAN: the tag
/// reads back and comes off again leaving the inner frame as it was.
func deliver(_ inner: UnsafeRawPointer, length: Int, vni: VNI) {
    let view = world.snapshot.view.pointee
    guard let segment = view.segment(vni: vni) else { return }
    expect(Int(segment) < view.segmentCount && view.segments[Int(segment)].vni == vni, "vni \(vni) found as segment \(segment)")
    let original = bytesAt(inner, count: length)
    for target in view.deliveries(segment: segment) where target.vlan != 0 {
        withExactBuffer(original, headroom: HeaderSize.vlanTag) { frame, length in
            let start = frame - HeaderSize.vlanTag
            EthernetFrame.insertVLANTag(target.vlan, at: start)
            let tagged = length + HeaderSize.vlanTag
            expect(EthernetFrame.vlanTag(of: start, length: tagged) == target.vlan, "the inserted VLAN tag does not read back")
            let untagged = EthernetFrame.removeVLANTag(from: start)
            expect(bytesAt(untagged, count: length) == original, "tagging and untagging changed the frame")
        }
    }
}
