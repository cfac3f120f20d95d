import FuzzSupport
import TunnelCore

/// The access ports' path, as the worker takes it: the port's binding and VLAN tag, the
/// forwarding lookup (or the flood list), the inner flow hash, and the outer header
/// written in front of the frame into exactly the room it needs.
///
/// An input is the DPDK port id the frame arrived on (one byte), the IPv4 identification
/// for tunnels without DF (a little-endian UInt16), then the frame.
let world = World()
let nextHopMAC = MACAddress(0x02, 0, 0, 0, 0, 0xAA)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAccess(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    guard let port = input.integer(UInt8.self), let identification = input.integer(UInt16.self) else { return 0 }
    let received = input.rest()
    let view = world.snapshot.view.pointee
    let binding = view.binding(ofPort: UInt16(port))
    guard binding != .unbound else {
        expect(!World.accessPortIDs.contains(UInt16(port)), "access port \(port) is unbound")
        return 0
    }
    expect(Int(binding.segment) < view.segmentCount, "port \(port) bound to segment \(binding.segment) of \(view.segmentCount)")
    // The worker drops shorter frames as malformed before reading them.
    guard received.count >= HeaderSize.ethernet else { return 0 }
    withExactBuffer(received) { frame, length in
        var frame = frame, length = length
        if binding.vlan != 0 {
            guard let tci = EthernetFrame.vlanTag(of: frame, length: length), tci & 0x0FFF == binding.vlan else { return }
            frame = EthernetFrame.removeVLANTag(from: frame)
            length -= HeaderSize.vlanTag
            expect(bytesAt(frame, count: length) == Array(received[0..<12] + received[16...]), "removing the VLAN tag garbled the frame")
        }
        let hash = InnerFlow.hash(frame: frame, length: length)
        let flow = InnerFlow(parsing: frame, length: length)
        expect(hash == flow.hash, "the fast flow hash \(hash) differs from the parsed flow's \(flow.hash) for \(flow)")
        let vni = view.segments[Int(binding.segment)].vni
        let destination = EthernetFrame.destination(of: frame)
        let key = ForwardingView.key(segment: binding.segment, mac: destination)
        let tunnels: [TunnelIndex]
        if !destination.isMulticast, let tunnel = view.tunnel(key: key) {
            expect(view.route(key: key)?.tunnel == tunnel, "route and tunnel lookups disagree for \(destination)")
            tunnels = [tunnel]
        } else {
            tunnels = Array(view.floodList(segment: binding.segment))
        }
        let inner = bytesAt(frame, count: length)
        for tunnel in tunnels {
            expect(FuzzSupport.tunnel(at: tunnel, of: world.overlay, in: view)?.vni == vni,
                   "tunnel index \(tunnel.rawValue) is no tunnel of segment \(vni)")
            encapsulate(inner, in: view.entry(tunnel).pointee.header, vni: vni, hash: hash, identification: identification)
        }
    }
    return 0
}

/// Writes the outer header in front of `inner` into a buffer with no byte to spare, and
/// checks every field of it and that the inner frame is untouched.
func encapsulate(_ inner: [UInt8], in template: OuterHeaderTemplate, vni: VNI, hash: UInt32, identification: UInt16) {
    let header = template.addressed(to: nextHopMAC)
    let sourcePort = InnerFlow.udpSourcePort(hash: hash)
    expect(sourcePort >= 49152, "UDP source port \(sourcePort) outside the dynamic range")
    withExactBuffer(inner, headroom: header.length) { frame, length in
        let outer = frame - header.length
        header.write(to: outer, innerLength: length, sourcePort: sourcePort, identification: identification)
        expect(bytesAt(frame, count: length) == inner, "writing the outer header changed the inner frame")
        func u16(_ offset: Int) -> UInt16 { UInt16(bigEndian: outer.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
        func u32(_ offset: Int) -> UInt32 { UInt32(bigEndian: outer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }

        expect(EthernetFrame.destination(of: outer) == nextHopMAC && EthernetFrame.source(of: outer) == World.localMAC
               && EthernetFrame.etherType(of: outer) == .ipv4, "outer Ethernet header")
        let ip = UnsafeRawPointer(outer + HeaderSize.ethernet)
        expect(ip.load(as: UInt8.self) == 0x45, "outer IPv4 version and header length")
        expect(Int(u16(16)) == length + header.mtuOverhead, "outer total length \(u16(16)) for \(length) inner bytes")
        expect(InternetChecksum.checksum(UnsafeRawBufferPointer(start: ip, count: HeaderSize.ipv4)) == 0,
               "outer header checksum wrong for inner length \(length), identification \(identification)")
        expect(u16(20) == (header.dontFragment ? 0x4000 : 0), "outer flags \(u16(20))")
        expect(u16(18) == (header.dontFragment ? 0 : identification), "outer identification \(u16(18))")
        expect(u32(26) == world.local.rawValue && u32(30) == header.remoteAddress.rawValue, "outer addresses")
        if header.carriesUDP {
            expect(ip.load(fromByteOffset: 9, as: UInt8.self) == IPProtocol.udp.rawValue, "outer protocol for \(header.type)")
            expect(u16(34) == sourcePort && Int(u16(38)) == length + 16 && u16(40) == 0, "UDP source port, length or checksum")
            expect(u32(46) >> 8 == vni.rawValue, "VNI \(u32(46) >> 8) on a frame of segment \(vni)")
        } else {
            expect(ip.load(fromByteOffset: 9, as: UInt8.self) == IPProtocol.gre.rawValue, "outer protocol for nvgre")
            expect(u32(34) == 0x2000_6558 && u32(38) >> 8 == vni.rawValue, "GRE header \(u32(34)), key \(u32(38))")
        }
    }
}
