import CDPDK

/// A thin Swift face on `struct rte_tel_data`, the reply a telemetry callback fills.
struct TelemetryData {
    let raw: OpaquePointer

    /// A fresh container for nesting; ownership passes to the parent on `add(_:container:)`.
    static func allocate() -> TelemetryData? {
        rte_tel_data_alloc().map(TelemetryData.init(raw:))
    }

    func startDictionary() { _ = rte_tel_data_start_dict(raw) }
    func startArray() { _ = rte_tel_data_start_array(raw, RTE_TEL_U64_VAL) }

    func append(_ value: UInt64) { _ = rte_tel_data_add_array_u64(raw, value) }

    func add(_ name: String, _ value: UInt64) { _ = rte_tel_data_add_dict_u64(raw, name, value) }
    func add(_ name: String, _ value: Int) { _ = rte_tel_data_add_dict_u64(raw, name, UInt64(clamping: value)) }
    func add(_ name: String, _ value: String) { _ = rte_tel_data_add_dict_string(raw, name, value) }
    func add(_ name: String, container: TelemetryData) {
        if rte_tel_data_add_dict_container(raw, name, container.raw, 0) != 0 { rte_tel_data_free(container.raw) }
    }

    /// A dictionary key as DPDK accepts it (letters, digits, `_` and `/`): addresses and
    /// tunnel names have their other characters replaced by `_` (the value carries the
    /// original).
    static func key(_ text: String) -> String {
        String(text.unicodeScalars.map { c in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "/") ? Character(c) : "_"
        })
    }
}
