import CDPDK
import Glibc
import TunnelCore

/// Brings the forwarder up (EAL, pool, ports, tables, workers), runs the control core on
/// the main lcore until SIGINT or SIGTERM, and takes everything down in reverse order.
public enum Forwarder {
    /// Runs until a signal stops it. `ealArguments` starts with the program name.
    public static func run(configuration: Configuration, ealArguments: [String]) throws(DataplaneError) {
        try EAL.initialize(arguments: ealArguments)
        defer { EAL.cleanup() }

        let workers = EAL.workerLcores
        guard !workers.isEmpty else {
            throw DataplaneError("no worker lcore: the main lcore is the control core, so give EAL at least two, e.g. -l 0-1")
        }
        guard workers.count < Int(UInt16.max) else { throw DataplaneError("too many lcores") }
        if PortID.all.isEmpty {
            throw DataplaneError("DPDK found no ports: bind a NIC to vfio-pci (dpdk-devbind.py) and pass -a PCI_ADDRESS, "
                + "or create virtual ones with --vdev net_tap0 --vdev net_tap1")
        }
        let uplink = try PortID(configuration.uplink.port, field: "uplink.port")
        var accessPorts: [PortID] = []
        for (i, access) in configuration.access.enumerated() {
            let port = try PortID(access.port, field: "access[\(i)].port")
            guard port != uplink else { throw DataplaneError("access[\(i)].port: \(port) is the uplink") }
            guard Int(port.rawValue) < ForwardingSnapshot.accessCapacity else {
                throw DataplaneError("access[\(i)].port: port id \(port.rawValue) is beyond \(ForwardingSnapshot.accessCapacity - 1)")
            }
            accessPorts.append(port)
        }

        let settings = configuration.dataplane
        let queues = UInt16(workers.count)
        let mtu = UInt16(configuration.uplink.mtu)
        let pool = try MbufPool(
            name: "tunnelfwd_mbufs",
            count: mbufCount(configuration, workers: workers.count, ports: accessPorts.count + 1),
            mtu: configuration.uplink.mtu, socket: uplink.socket)
        defer { pool.free() }

        var started: [PortID] = []
        defer { started.forEach { $0.stopAndClose() } }
        try uplink.start(PortSetup(
            rxQueues: queues + 1, rssQueues: queues, txQueues: queues + 1,
            rxDescriptors: UInt16(settings.rxDescriptors), txDescriptors: UInt16(settings.txDescriptors),
            promiscuous: false, mtu: mtu, mtuField: "uplink.mtu"), pool: pool, role: "uplink")
        started.append(uplink)
        for (i, port) in accessPorts.enumerated() {
            try port.start(PortSetup(
                rxQueues: queues, txQueues: queues,
                rxDescriptors: UInt16(settings.rxDescriptors), txDescriptors: UInt16(settings.txDescriptors),
                promiscuous: true, mtu: mtu, mtuField: "access[\(i)].port"), pool: pool, role: "access port")
            started.append(port)
        }
        let overlay: Overlay
        do {
            overlay = try Overlay(configuration: configuration, localMAC: uplink.macAddress,
                                  accessPortIDs: accessPorts.map(\.rawValue), nowMs: Clock.milliseconds)
        } catch {
            throw DataplaneError("configuration: \(error)")
        }
        let now = Clock.milliseconds
        let nextHops = NextHopTable.allocate(capacity: settings.maxNextHops)
        defer { nextHops.deallocate() }
        let publisher = ForwardingPublisher(initial: ForwardingSnapshot(overlay.plan()), readers: workers.count)
        let resolutions = ResolutionSignal.allocate()
        var resolver = NeighborResolver(settings: configuration.resolution, uplink: configuration.uplink.address, nowMs: now)
        var initialActions: [ResolverAction] = []
        for neighbor in configuration.neighbors {
            initialActions += resolver.addStatic(neighbor.address, mac: neighbor.mac, nowMs: now)
        }
        for entry in overlay.neighbors.entries.values.sorted(by: { $0.id < $1.id }) {
            initialActions += resolver.attach(entry.address, id: entry.id, nowMs: now)
        }

        let links = LinkStates.allocate()
        defer { links.deallocate() }
        let counters = CounterTable(lcores: [EAL.mainLcore] + workers, maxLcore: Int(RTE_MAX_LCORE))
        defer { counters.deallocate() }
        let delays = workers.map { _ in DelayHistogram.allocate() }
        defer { delays.forEach { $0.deallocate() } }
        let telemetry = TelemetrySource(counters: counters, pool: pool, ports:
            [TelemetrySource.PortRole(port: uplink, role: "uplink")]
            + zip(accessPorts, configuration.access).map {
                TelemetrySource.PortRole(port: $0, role: "access", segment: $1.segment, vlan: $1.vlan)
            }, links: links, firstPacketDelays: delays)
        Telemetry.register(telemetry)
        defer { Telemetry.detach() }
        let server = try ControlServer(directory: EAL.runtimeDirectory)
        let kernel = try configuration.kernelSync.map { (sync) throws(DataplaneError) in
            try KernelNeighborSync(interface: sync.interface)
        }
        let evpn = try configuration.evpn.map { (settings) throws(DataplaneError) in
            try EVPNKernel(settings: settings, uplinkAddress: configuration.uplink.address.address)
        }

        var rings: [OpaquePointer] = []
        defer { rings.forEach { rte_ring_free($0) } }
        /// `elementSize` 8 carries pointers (mbufs, next-hop ids), 16 learning reports.
        func ring(_ name: String, elementSize: UInt32 = 8) throws(DataplaneError) -> OpaquePointer {
            guard let ring = rte_ring_create_elem(name, elementSize, UInt32(Self.controlRingSize), uplink.socket,
                                                  UInt32(RING_F_SP_ENQ | RING_F_SC_DEQ)) else {
                throw DataplaneError("cannot create ring \(name): \(String(cString: rte_strerror(tf_errno())))")
            }
            rings.append(ring)
            return ring
        }
        // Local MACs of EVPN segments are learnt (and aged) even without learning from tunnels.
        let learns = configuration.learning.enabled || configuration.evpn != nil
        let learnedAges = learns ? LearnedAges.allocate(capacity: configuration.learning.maxEntries) : nil
        defer { learnedAges?.deallocate() }
        // Each worker owns the packets in its buffer (and frees them when it stops); the
        // buffers themselves are freed here, once the workers have been joined, because
        // the control core reads how many packets wait in them until it stops too.
        let pendingBuffers = workers.map { _ in
            PendingBuffer(perCore: configuration.pending.perCore, perNeighbor: configuration.pending.perNeighbor,
                          nextHopCapacity: settings.maxNextHops)
        }
        defer { pendingBuffers.forEach { $0.deallocate() } }
        var controlWorkers: [ControlCore.Worker] = []
        for (lcore, buffer) in zip(workers, pendingBuffers) {
            controlWorkers.append(ControlCore.Worker(
                lcore: lcore, arp: try ring("tf_arp_\(lcore)"), misses: try ring("tf_miss_\(lcore)"),
                handoff: try ring("tf_handoff_\(lcore)"),
                learningReports: learnedAges == nil ? nil : try ring("tf_learn_\(lcore)", elementSize: 16),
                pending: buffer.counts))
        }

        let running = RunFlag.allocate()
        Signals.stop(on: Signals.stopping, flag: running)
        let accessIDs = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: accessPorts.count)
        _ = accessIDs.initialize(from: accessPorts.map(\.rawValue))
        defer { accessIDs.deallocate() }

        var control = ControlCore(
            uplink: uplink, queue: queues, workers: controlWorkers, pool: pool,
            counters: counters.block(lcore: EAL.mainLcore), nextHops: nextHops, resolutions: resolutions,
            publisher: publisher, telemetry: telemetry, server: server, kernel: kernel, evpn: evpn, ports: started, links: links,
            pendingSettings: configuration.pending, running: running, overlay: overlay, resolver: resolver,
            learning: learnedAges.map {
                ControlCore.Learning(ages: $0, agingTicks: LearningClock.ticks(seconds: configuration.learning.agingSeconds, tscHz: EAL.tscHz))
            },
            evpnMirror: EVPNFDBMirror(segments: evpn?.segments ?? []))

        let tscHz = EAL.tscHz
        // Static neighbors' MACs and the first requests before any worker runs: a frame
        // received at once must find a static next hop resolved, not miss it.
        control.start(with: initialActions)
        telemetry.markStarted()
        for (index, worker) in controlWorkers.enumerated() {
            let setup = WorkerSetup(
                lcore: worker.lcore, queue: UInt16(index), reader: index,
                accessPorts: UnsafeBufferPointer(accessIDs), uplink: uplink, uplinkMTU: configuration.uplink.mtu,
                largestDelivery: configuration.uplink.mtu + HeaderSize.ethernet + HeaderSize.vlanTag, links: links,
                localAddress: configuration.uplink.address.address, localMAC: uplink.macAddress,
                forwarding: publisher.reader, quiescentState: publisher.quiescentState,
                nextHops: nextHops, counters: counters.block(lcore: worker.lcore),
                toControl: worker.arp, fromControl: worker.handoff, misses: worker.misses, resolutions: resolutions, pending: pendingBuffers[index],
                learning: learnedAges.map { WorkerLearning(reports: worker.learningReports!, ages: $0) },
                lifetimeCycles: UInt64(configuration.pending.lifetimeMs) * tscHz / 1000, tscHz: tscHz,
                firstPacketDelay: delays[index], pool: pool, burst: settings.burst, running: running)
            do {
                try WorkerLauncher.launch(setup)
            } catch {
                // The workers already running use everything freed on the way out.
                running.stop()
                rte_eal_mp_wait_lcore()
                throw error
            }
        }
        Log.info("\(workers.count) worker(s) on lcores \(workers.map(String.init).joined(separator: ",")), "
            + "control on lcore \(EAL.mainLcore); uplink \(uplink) \(uplink.macAddress) \(configuration.uplink.address); "
            + "access \(accessPorts.map(\.description).joined(separator: ", ")); \(overlay.tunnelCount) tunnel(s), "
            + "\(overlay.neighbors.count) tunnel neighbor(s); pool \(pool.summary); telemetry \(EAL.runtimeDirectory)/dpdk_telemetry.v2, "
            + "control \(server.path)" + (kernel.map { "; kernel neighbor sync on \($0.interface)" } ?? "")
            + (evpn.map { "; EVPN segment(s) \($0.settings.segments.map { "\($0.vni) (\($0.vxlanInterface))" }.joined(separator: ", "))" } ?? ""))

        control.run()

        rte_eal_mp_wait_lcore()
        control.shutdown()
        started.forEach { $0.stopAndClose() }
        started.removeAll()
        Log.info("stopped: workers joined, ports closed, \(pool.inUse) mbuf(s) not returned to the pool")
    }

    /// Slots of each ring between a worker and the control core (a power of two; one
    /// slot stays free).
    static let controlRingSize = 1024

    /// Enough mbufs for every RX and TX ring, every worker's bursts and pending buffer,
    /// the control rings, and the per-lcore caches, plus the configured margin. Each costs
    /// its data room in hugepage memory, about 2.3 KiB up to MTU 2026 and 9.3 KiB at 9000
    /// (`MbufPool.dataRoom`): a jumbo configuration needs four times the memory.
    static func mbufCount(_ c: Configuration, workers: Int, ports: Int) -> Int {
        let d = c.dataplane
        // Every port has a queue pair per worker; the uplink has one more, the control core's.
        let rings = (ports * workers + 1) * (d.rxDescriptors + d.txDescriptors)
        // Per worker: its bursts, its pending buffer, and the two control rings that carry
        // mbufs (ARP to the control core, frames handed back from it).
        let inFlight = workers * (2 * d.burst + c.pending.perCore + 2 * Self.controlRingSize)
        let caches = (workers + 1) * Int(MbufPool.cacheSize) * 3 / 2
        return rings + inFlight + caches + d.extraMbufs
    }
}

/// Starts a worker loop on an lcore.
enum WorkerLauncher {
    static func launch(_ setup: WorkerSetup) throws(DataplaneError) {
        let box = UnsafeMutablePointer<WorkerSetup>.allocate(capacity: 1)
        box.initialize(to: setup)
        let rc = rte_eal_remote_launch({ argument in
            let box = argument!.assumingMemoryBound(to: WorkerSetup.self)
            var worker = Worker(box.move())
            box.deallocate()
            worker.run()
            return 0
        }, box, setup.lcore)
        guard rc == 0 else {
            box.deinitialize(count: 1)
            box.deallocate()
            throw DataplaneError("cannot launch the worker on lcore \(setup.lcore): \(String(cString: rte_strerror(-rc)))")
        }
    }
}

/// Milliseconds of a monotonic clock: the control plane's notion of "now".
enum Clock {
    static var milliseconds: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }
}

/// The signals that stop the forwarder only clear the run flag; the lcores notice within
/// one loop, and everything is taken down in order.
enum Signals {
    nonisolated(unsafe) private static var flag: RunFlag?

    /// Besides SIGINT and SIGTERM, every signal whose default would end the process
    /// without cleaning up (leaving hugepage files, kernel neighbors and ports behind),
    /// or, for SIGQUIT and SIGABRT, would leave the lcores polling after Swift's crash
    /// report. An abort() from inside the process still ends it: abort raises again with
    /// the default action once a handler returns.
    static let stopping = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGUSR1, SIGUSR2, SIGALRM]

    static func stop(on signals: [Int32], flag: RunFlag) {
        Self.flag = flag
        for s in signals {
            signal(s) { _ in Signals.flag?.stop() }
        }
        // Writes to a client that went away fail with EPIPE instead.
        signal(SIGPIPE, SIG_IGN)
    }
}
