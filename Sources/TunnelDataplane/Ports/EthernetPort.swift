import CDPDK
import Glibc
import TunnelCore

/// A DPDK ethdev port id.
public struct PortID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Finds the port a configuration names, by device name or by id.
    public init(_ selector: PortSelector, field: String) throws(DataplaneError) {
        switch selector {
        case .id(let id):
            guard rte_eth_dev_is_valid_port(id) != 0 else {
                throw DataplaneError("\(field): there is no DPDK port \(id) (\(PortID.inventory))")
            }
            rawValue = id
        case .name(let name):
            var id: UInt16 = 0
            guard rte_eth_dev_get_port_by_name(name, &id) == 0 else {
                throw DataplaneError("\(field): there is no DPDK port named '\(name)' (\(PortID.inventory)); "
                    + "add it with --vdev (e.g. --vdev \(name)) or -a PCI_ADDRESS in the EAL arguments")
            }
            rawValue = id
        }
    }

    /// All probed ports.
    public static var all: [PortID] {
        var ports: [PortID] = []
        var id = rte_eth_find_next(0)
        while id < RTE_MAX_ETHPORTS {
            ports.append(PortID(rawValue: id))
            id = rte_eth_find_next(id + 1)
        }
        return ports
    }

    static var inventory: String {
        let ports = all
        return ports.isEmpty ? "DPDK found no ports at all" : "ports present: " + ports.map { "\($0.rawValue)=\($0.name)" }.joined(separator: ", ")
    }

    public var name: String {
        var buffer = [CChar](repeating: 0, count: Int(RTE_ETH_NAME_MAX_LEN))
        guard rte_eth_dev_get_name_by_port(rawValue, &buffer) == 0 else { return "port\(rawValue)" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var macAddress: MACAddress {
        var address = rte_ether_addr()
        rte_eth_macaddr_get(rawValue, &address)
        return MACAddress(octets: address.addr_bytes)
    }

    public var socket: Int32 {
        let s = rte_eth_dev_socket_id(rawValue)
        return s < 0 ? Int32(rte_socket_id()) : s
    }

    public var description: String { "\(name) (port \(rawValue))" }
}

/// How one port is set up: queue counts and ring sizes.
public struct PortSetup {
    public var rxQueues: UInt16
    /// How many of the RX queues RSS spreads traffic over (the workers'); the others
    /// only get what the device steers there by other means.
    public var rssQueues: UInt16
    public var txQueues: UInt16
    public var rxDescriptors: UInt16
    public var txDescriptors: UInt16
    public var promiscuous: Bool
    /// The layer-3 MTU to program: `uplink.mtu`, on every port (an access port carries
    /// inner frames as large as the uplink can).
    public var mtu: UInt16
    /// The configuration field a refused MTU is reported under.
    public var mtuField: String

    public init(rxQueues: UInt16, rssQueues: UInt16? = nil, txQueues: UInt16, rxDescriptors: UInt16, txDescriptors: UInt16,
                promiscuous: Bool, mtu: UInt16, mtuField: String) {
        self.rxQueues = rxQueues
        self.rssQueues = rssQueues ?? rxQueues
        self.txQueues = txQueues
        self.rxDescriptors = rxDescriptors
        self.txDescriptors = txDescriptors
        self.promiscuous = promiscuous
        self.mtu = mtu
        self.mtuField = mtuField
    }
}

extension PortID {
    /// Configures the queues (with RSS when the device has it and there is more than one
    /// RX queue) and the MTU, and starts the port. A port that fails after it was
    /// configured is closed again: its RX rings hold mbufs of `pool`, which the caller
    /// frees next.
    public func start(_ setup: PortSetup, pool: MbufPool, role: String) throws(DataplaneError) {
        var info = rte_eth_dev_info()
        try check(rte_eth_dev_info_get(rawValue, &info), "read device info of \(role) \(self)")
        guard setup.rxQueues <= info.max_rx_queues, setup.txQueues <= info.max_tx_queues else {
            throw DataplaneError("\(role) \(self) has at most \(info.max_rx_queues) RX and \(info.max_tx_queues) TX queues, "
                + "but \(setup.rxQueues) RX and \(setup.txQueues) TX are needed (one pair per worker, plus one for the control core on the uplink): use fewer lcores")
        }
        let mtus = Self.mtuRange(info)
        guard mtus.contains(setup.mtu) else {
            throw DataplaneError("\(setup.mtuField): \(self) takes an MTU of \(mtus.lowerBound) to \(mtus.upperBound), "
                + "not uplink.mtu \(setup.mtu)")
        }
        var conf = rte_eth_conf()
        // The MTU goes in at configuration time, for devices that cannot change it later.
        conf.rxmode.mtu = UInt32(setup.mtu)
        let rssTypes = info.flow_type_rss_offloads & tf_rss_ip_udp_tcp
        if setup.rxQueues > 1 && rssTypes != 0 {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS
            conf.rx_adv_conf.rss_conf.rss_hf = rssTypes
        }
        if info.tx_offload_capa & tf_tx_offload_multi_segs != 0 {
            conf.txmode.offloads |= tf_tx_offload_multi_segs
        }
        try check(rte_eth_dev_configure(rawValue, setup.rxQueues, setup.txQueues, &conf), "configure \(role) \(self)")
        do throws(DataplaneError) {
            try setUpQueuesAndStart(setup, info: info, conf: conf, pool: pool, role: role)
        } catch {
            _ = rte_eth_dev_close(rawValue)
            throw error
        }
    }

    private func setUpQueuesAndStart(_ setup: PortSetup, info: rte_eth_dev_info, conf: rte_eth_conf, pool: MbufPool,
                                     role: String) throws(DataplaneError) {
        var rxd = setup.rxDescriptors
        var txd = setup.txDescriptors
        try check(rte_eth_dev_adjust_nb_rx_tx_desc(rawValue, &rxd, &txd), "adjust ring sizes of \(role) \(self)")
        for q in 0..<setup.rxQueues {
            try check(rte_eth_rx_queue_setup(rawValue, q, rxd, UInt32(socket), nil, pool.pointer), "set up RX queue \(q) of \(role) \(self)")
        }
        var txConf = info.default_txconf
        txConf.offloads = conf.txmode.offloads
        for q in 0..<setup.txQueues {
            try check(rte_eth_tx_queue_setup(rawValue, q, txd, UInt32(socket), &txConf), "set up TX queue \(q) of \(role) \(self)")
        }
        // Also through the driver's own MTU operation, which some apply only there (net_tap
        // sets its kernel interface's MTU); a device without one keeps the configured MTU.
        let rc = rte_eth_dev_set_mtu(rawValue, setup.mtu)
        guard rc == 0 || rc == -ENOTSUP else {
            throw DataplaneError("\(setup.mtuField): \(self) refused uplink.mtu \(setup.mtu): \(String(cString: rte_strerror(-rc)))")
        }
        try check(rte_eth_dev_start(rawValue), "start \(role) \(self)")
        if conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS && setup.rssQueues < setup.rxQueues && info.reta_size > 0 {
            restrictRSS(to: setup.rssQueues, tableSize: Int(info.reta_size))
        }
        if setup.promiscuous {
            // Access ports carry frames for the VMs' MACs, not the port's own; a device
            // that cannot go promiscuous still forwards what it receives.
            _ = rte_eth_promiscuous_enable(rawValue)
        }
    }

    /// The MTUs the device accepts, by the rule ethdev checks them with: between its
    /// minimum and maximum MTU, and the frame (MTU plus the device's overhead: the gap
    /// between its largest frame and largest MTU, or Ethernet header and CRC when it
    /// gives no maximum MTU) no larger than its largest frame. net_tap, for one, reports
    /// no maximum MTU and a largest frame of 1522 bytes: MTU 1504 at most.
    static func mtuRange(_ info: rte_eth_dev_info) -> ClosedRange<UInt16> {
        let noMaximum = UInt16.max
        let largestFrame = UInt64(info.max_rx_pktlen)
        let overhead: UInt64 = info.max_mtu != noMaximum && largestFrame > UInt64(info.max_mtu)
            ? largestFrame - UInt64(info.max_mtu)
            : UInt64(HeaderSize.ethernet) + UInt64(RTE_ETHER_CRC_LEN)
        let byFrame = largestFrame > overhead ? largestFrame - overhead : 0
        let highest = UInt16(min(UInt64(info.max_mtu), byFrame))
        return min(info.min_mtu, highest)...highest
    }

    /// Points every RSS redirection-table entry at one of the first `queues` queues, so the
    /// control core's queue gets no data traffic. A device that refuses keeps its default
    /// table, and the log says so.
    private func restrictRSS(to queues: UInt16, tableSize: Int) {
        let groups = (tableSize + 63) / 64
        var table = [rte_eth_rss_reta_entry64](repeating: rte_eth_rss_reta_entry64(), count: groups)
        for g in 0..<groups {
            table[g].mask = ~0
            withUnsafeMutableBytes(of: &table[g].reta) { raw in
                let entries = raw.bindMemory(to: UInt16.self)
                for i in 0..<64 { entries[i] = UInt16((g * 64 + i) % Int(queues)) }
            }
        }
        if rte_eth_dev_rss_reta_update(rawValue, &table, UInt16(tableSize)) != 0 {
            Log.info("\(self): the device keeps its own RSS table; its last RX queue may receive data traffic")
        }
    }

    public func stopAndClose() {
        _ = rte_eth_dev_stop(rawValue)
        _ = rte_eth_dev_close(rawValue)
    }

    private func check(_ rc: Int32, _ what: String) throws(DataplaneError) {
        guard rc < 0 else { return }
        throw DataplaneError("cannot \(what): \(String(cString: rte_strerror(-rc)))")
    }
}
