import FuzzSupport
import TunnelCore

/// The configuration file as `tunnelfwd --config F` reads it: UTF-8 text (anything else
/// is refused before parsing), parsed and validated by `Configuration(yaml:)`. A refusal
/// is one line; a configuration that passes is one the forwarder can run: the overlay
/// takes every tunnel and entry of it, and its forwarding snapshot builds.
///
/// An input is the file's bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let text = String(validating: UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self) else {
        return 0
    }
    let configuration: Configuration
    do {
        configuration = try Configuration(yaml: text)
    } catch {
        let line = error.description
        expect(!line.isEmpty && !line.contains(where: \.isNewline), "a refusal that is not one line: \(line.debugDescription)")
        return 0
    }
    // The forwarder gives each access port its DPDK port id, all below the snapshot's
    // access table size; a file naming more ports than a machine has fails at start-up.
    guard configuration.access.count <= ForwardingSnapshot.accessCapacity else { return 0 }
    let overlay: Overlay
    do {
        overlay = try Overlay(configuration: configuration, localMAC: World.localMAC,
                              accessPortIDs: configuration.access.indices.map(UInt16.init), nowMs: 0)
    } catch {
        expect(false, "a valid configuration the overlay refuses: \(error)")
        return 0
    }
    expect(overlay.tunnels.count == configuration.tunnels.count && overlay.forwarding.count == configuration.forwarding.count,
           "the overlay lost tunnels or forwarding entries of the configuration")
    checkSnapshot(ForwardingSnapshot(overlay.plan()), of: overlay)
    return 0
}
