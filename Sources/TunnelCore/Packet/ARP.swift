/// An ARP message for IPv4 over Ethernet (RFC 826), the only kind the underlay uses.
@frozen
public struct ARPMessage: Equatable, Sendable {
    @frozen
    public struct Operation: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt16

        @inlinable
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        @inlinable public static var request: Operation { Operation(rawValue: 1) }
        @inlinable public static var reply: Operation { Operation(rawValue: 2) }
    }

    public var operation: Operation
    public var senderMAC: MACAddress
    public var senderAddress: IPv4Address
    public var targetMAC: MACAddress
    public var targetAddress: IPv4Address

    /// An ARP message in an Ethernet frame: 14 + 28 bytes, before any padding to the
    /// 60-byte minimum (which NICs add on transmit).
    @inlinable
    public static var frameLength: Int { HeaderSize.ethernet + HeaderSize.arp }

    @inlinable
    public init(
        operation: Operation, senderMAC: MACAddress, senderAddress: IPv4Address,
        targetMAC: MACAddress, targetAddress: IPv4Address
    ) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderAddress = senderAddress
        self.targetMAC = targetMAC
        self.targetAddress = targetAddress
    }

    /// A request for `targetAddress`'s MAC address. The target MAC is zero as in
    /// Linux, whether the request is then broadcast or sent unicast to probe a known
    /// neighbor (RFC 1122 §2.3.2.1).
    @inlinable
    public static func request(
        senderMAC: MACAddress, senderAddress: IPv4Address, targetAddress: IPv4Address
    ) -> ARPMessage {
        ARPMessage(operation: .request, senderMAC: senderMAC, senderAddress: senderAddress,
                   targetMAC: .zero, targetAddress: targetAddress)
    }

    /// Whether the owner of `address` answers this message: a request for it, from a
    /// possible sender other than `address` (or from 0.0.0.0, a conflict probe of RFC 5227,
    /// answered so that the address is defended), naming a unicast MAC to answer to. A
    /// forged request naming a broadcast, multicast or zero MAC, or a martian sender, is
    /// not answered (as Linux's arp_process).
    public func asksToBeAnswered(by address: IPv4Address) -> Bool {
        operation == .request && targetAddress == address && senderAddress != address
            && (senderAddress == .any || senderAddress.isPossibleSource)
            && senderMAC.isUnicast
    }

    /// The reply to this request from the owner of its target address, `mac`.
    @inlinable
    public func reply(with mac: MACAddress) -> ARPMessage {
        ARPMessage(operation: .reply, senderMAC: mac, senderAddress: targetAddress,
                   targetMAC: senderMAC, targetAddress: senderAddress)
    }

    /// Parses an Ethernet frame of `length` bytes; `nil` unless it is an ARP message
    /// for Ethernet and IPv4. Nothing past `length` is read.
    @inlinable
    public init?(parsingFrame frame: UnsafeRawPointer, length: Int) {
        guard length >= Self.frameLength, EthernetFrame.etherType(of: frame) == .arp else { return nil }
        self.init(parsingPayload: frame + HeaderSize.ethernet, length: length &- HeaderSize.ethernet)
    }

    /// Parses the ARP payload (after the Ethernet header) of `length` bytes; `nil`
    /// when it is too short or not for Ethernet (hardware type 1, length 6) and IPv4
    /// (protocol type 0x0800, length 4). Operations other than request and reply are
    /// returned as they are, for the caller to ignore.
    @inlinable
    public init?(parsingPayload arp: UnsafeRawPointer, length: Int) {
        guard length >= HeaderSize.arp,
              UInt32(bigEndian: arp.loadUnaligned(as: UInt32.self)) == 0x0001_0800,
              UInt16(bigEndian: arp.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) == 0x0604
        else { return nil }
        // The addresses sit at 8, 14, 18 and 24; each MAC is the low 48 bits of the
        // 8 bytes ending with it.
        self.init(
            operation: Operation(rawValue: UInt16(bigEndian: arp.loadUnaligned(fromByteOffset: 6, as: UInt16.self))),
            senderMAC: MACAddress(rawValue: UInt64(bigEndian: arp.loadUnaligned(fromByteOffset: 6, as: UInt64.self))),
            senderAddress: IPv4Address(rawValue: UInt32(bigEndian: arp.loadUnaligned(fromByteOffset: 14, as: UInt32.self))),
            targetMAC: MACAddress(rawValue: UInt64(bigEndian: arp.loadUnaligned(fromByteOffset: 16, as: UInt64.self))),
            targetAddress: IPv4Address(rawValue: UInt32(bigEndian: arp.loadUnaligned(fromByteOffset: 24, as: UInt32.self))))
    }

    /// Writes the message as an Ethernet frame from `senderMAC` to `destination`
    /// (broadcast for a request, the requester for a reply, the neighbor for a unicast
    /// probe) and returns its length, `frameLength`.
    ///
    /// - Precondition: `frame` has room for `frameLength` bytes.
    @inlinable
    @discardableResult
    public func write(to frame: UnsafeMutableRawPointer, destination: MACAddress = .broadcast) -> Int {
        EthernetFrame.writeHeader(to: frame, destination: destination, source: senderMAC, etherType: .arp)
        let arp = frame + HeaderSize.ethernet
        arp.storeBytes(of: UInt32(0x0001_0800).bigEndian, as: UInt32.self)
        arp.storeBytes(of: (UInt32(0x0604) << 16 | UInt32(operation.rawValue)).bigEndian, toByteOffset: 4, as: UInt32.self)
        let sender = UInt64(senderAddress.rawValue)
        arp.storeBytes(of: (senderMAC.rawValue << 16 | sender >> 16).bigEndian, toByteOffset: 8, as: UInt64.self)
        arp.storeBytes(of: ((sender & 0xFFFF) << 48 | targetMAC.rawValue).bigEndian, toByteOffset: 16, as: UInt64.self)
        arp.storeBytes(of: targetAddress.rawValue.bigEndian, toByteOffset: 24, as: UInt32.self)
        return Self.frameLength
    }
}
