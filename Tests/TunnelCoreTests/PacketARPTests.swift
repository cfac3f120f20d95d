import TunnelCore
import XCTest

final class PacketARPTests: XCTestCase {
    private let localMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)
    private let localAddress = IPv4Address(192, 168, 50, 1)
    private let neighborMAC = MACAddress(0x02, 0, 0, 0, 0, 0xFE)
    private let neighborAddress = IPv4Address(192, 168, 50, 254)

    // From scapy 2.5, raw(Ether(dst=..., src="02:00:00:00:00:01")/ARP(op=..., hwsrc=...,
    // psrc=..., hwdst=..., pdst=...)):
    /// Broadcast request from 192.168.50.1 for 192.168.50.254.
    private let broadcastRequest = "ffffffffffff02000000000108060001080006040001020000000001c0a83201000000000000c0a832fe"
    /// The same request sent unicast to 02:00:00:00:00:fe (a probe).
    private let unicastProbe = "0200000000fe02000000000108060001080006040001020000000001c0a83201000000000000c0a832fe"
    /// A reply from 02:00:00:00:00:01 / 192.168.50.1 to 02:00:00:00:00:fe / 192.168.50.254.
    private let reply = "0200000000fe02000000000108060001080006040002020000000001c0a832010200000000fec0a832fe"

    private func written(_ message: ARPMessage, to destination: MACAddress) -> [UInt8] {
        var frame = [UInt8](repeating: 0xEE, count: ARPMessage.frameLength + 4)
        let length = frame.withUnsafeMutableBytes { message.write(to: $0.baseAddress!, destination: destination) }
        XCTAssertEqual(length, 42)
        XCTAssertEqual(frame[42...], [0xEE, 0xEE, 0xEE, 0xEE], "wrote past the frame")
        return Array(frame[..<length])
    }

    private func parsed(_ hex: String) -> ARPMessage? {
        withExactBuffer([UInt8](hex: hex)) { ARPMessage(parsingFrame: $0, length: $1) }
    }

    func testRequestsMatchScapy() {
        let request = ARPMessage.request(senderMAC: localMAC, senderAddress: localAddress, targetAddress: neighborAddress)
        XCTAssertEqual(written(request, to: .broadcast).hex, broadcastRequest)
        XCTAssertEqual(written(request, to: neighborMAC).hex, unicastProbe)
    }

    func testReplyMatchesScapy() {
        let request = ARPMessage.request(senderMAC: neighborMAC, senderAddress: neighborAddress, targetAddress: localAddress)
        let answer = request.reply(with: localMAC)
        XCTAssertEqual(answer, ARPMessage(operation: .reply, senderMAC: localMAC, senderAddress: localAddress,
                                          targetMAC: neighborMAC, targetAddress: neighborAddress))
        XCTAssertEqual(written(answer, to: request.senderMAC).hex, reply)
    }

    func testParsesScapyFrames() {
        XCTAssertEqual(parsed(broadcastRequest), ARPMessage(
            operation: .request, senderMAC: localMAC, senderAddress: localAddress,
            targetMAC: .zero, targetAddress: neighborAddress))
        XCTAssertEqual(parsed(reply), ARPMessage(
            operation: .reply, senderMAC: localMAC, senderAddress: localAddress,
            targetMAC: neighborMAC, targetAddress: neighborAddress))
        // Padded to the Ethernet minimum, as received from the wire.
        XCTAssertEqual(parsed(reply + String(repeating: "00", count: 18)), parsed(reply))
    }

    func testRoundTrip() {
        let messages = [
            ARPMessage(operation: .request, senderMAC: MACAddress(0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54),
                       senderAddress: IPv4Address(255, 254, 253, 252), targetMAC: .broadcast,
                       targetAddress: IPv4Address(1, 2, 3, 4)),
            ARPMessage(operation: ARPMessage.Operation(rawValue: 0xABCD), senderMAC: .zero,
                       senderAddress: .any, targetMAC: localMAC, targetAddress: neighborAddress),
        ]
        for message in messages {
            let frame = written(message, to: .broadcast)
            XCTAssertEqual(withExactBuffer(frame) { ARPMessage(parsingFrame: $0, length: $1) }, message)
            XCTAssertEqual(withExactBuffer(Array(frame[14...])) { ARPMessage(parsingPayload: $0, length: $1) }, message)
        }
    }

    func testRejectsMalformedFrames() {
        let good = [UInt8](hex: reply)
        func rejected(_ change: (inout [UInt8]) -> Void, _ what: String) {
            var frame = good
            change(&frame)
            XCTAssertNil(withExactBuffer(frame) { ARPMessage(parsingFrame: $0, length: $1) }, what)
        }
        rejected({ $0.removeLast() }, "41 bytes")
        rejected({ $0 = Array($0[..<14]) }, "no payload")
        rejected({ $0[13] = 0x00 }, "EtherType IPv4")
        rejected({ $0[15] = 0x06 }, "hardware type 6")
        rejected({ $0[16] = 0x86; $0[17] = 0xDD }, "protocol type IPv6")
        rejected({ $0[18] = 8 }, "hardware length 8")
        rejected({ $0[19] = 16 }, "protocol length 16")
        XCTAssertNil(withExactBuffer(Array(good[14..<41])) { ARPMessage(parsingPayload: $0, length: $1) })
    }

    func testOnlyProperRequestsForTheAddressAreAnswered() {
        let local = IPv4Address(192, 168, 50, 1)
        let peer = MACAddress(0x02, 0, 0, 0, 0, 0x76)
        func request(_ mac: MACAddress, _ sender: IPv4Address, for target: IPv4Address = local) -> ARPMessage {
            .request(senderMAC: mac, senderAddress: sender, targetAddress: target)
        }
        XCTAssertTrue(request(peer, IPv4Address(192, 168, 50, 76)).asksToBeAnswered(by: local))
        XCTAssertTrue(request(peer, IPv4Address(10, 0, 0, 1)).asksToBeAnswered(by: local), "outside the prefix, as Linux")
        XCTAssertTrue(request(peer, .any).asksToBeAnswered(by: local), "a conflict probe is answered")
        XCTAssertFalse(request(peer, IPv4Address(192, 168, 50, 76), for: IPv4Address(192, 168, 50, 77)).asksToBeAnswered(by: local))
        XCTAssertFalse(request(peer, local).asksToBeAnswered(by: local), "our own request")
        for mac in [MACAddress.broadcast, MACAddress(0x01, 0, 0x5E, 0, 0, 1), .zero] {
            XCTAssertFalse(request(mac, IPv4Address(192, 168, 50, 76)).asksToBeAnswered(by: local), "\(mac)")
        }
        for martian in [IPv4Address(127, 0, 0, 1), IPv4Address(224, 0, 0, 5), IPv4Address(255, 255, 255, 255)] {
            XCTAssertFalse(request(peer, martian).asksToBeAnswered(by: local), "\(martian)")
        }
        XCTAssertFalse(request(peer, IPv4Address(192, 168, 50, 76)).reply(with: peer).asksToBeAnswered(by: local), "a reply")
    }
}
