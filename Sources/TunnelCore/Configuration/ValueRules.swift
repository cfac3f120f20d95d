/// How the values that both the configuration file and runtime commands take are written,
/// which are allowed, and the words of each refusal: the file reads its scalars through
/// these (`YAMLReader`), and so do tunnelctl's options and the control protocol
/// (`TunnelSpec`, `ControlRequest`), so that a value one refuses the other refuses too,
/// alike. A `Problem`'s message comes after the field's name or path.
public enum ValueRules {
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String

        init(_ message: String) { self.message = message }

        public var description: String { message }
    }

    /// Every VNI (VXLAN, Geneve) and VSID (NVGRE): 24 bits.
    public static let vniRange = 0...Int(VNI.max)

    /// A plain decimal integer in `range`: digits with an optional leading `-`, without
    /// leading zeros (YAML would read `010` as octal, and people as ten).
    public static func integer(_ text: String, in range: ClosedRange<Int>) throws(Problem) -> Int {
        guard let value = try decimal(text), range.contains(value) else {
            throw Problem(outOfRange(ConfigurationText.sanitize(text), range))
        }
        return value
    }

    /// Why `value` is not in `range`, or `nil`.
    public static func rangeProblem(_ value: Int, _ range: ClosedRange<Int>) -> String? {
        range.contains(value) ? nil : outOfRange(String(value), range)
    }

    public static func vni(_ text: String) throws(Problem) -> VNI {
        guard let value = try decimal(text) else { throw Problem(outOfRange(ConfigurationText.sanitize(text), vniRange)) }
        if let problem = vniProblem(value) { throw Problem(problem) }
        return VNI(UInt32(value))!
    }

    /// Why `value` is not a VNI, or `nil`.
    public static func vniProblem(_ value: Int) -> String? {
        value > Int(VNI.max) ? "\(value) is over the 24-bit maximum \(VNI.max)" : rangeProblem(value, vniRange)
    }

    /// `true` or `false` (also `True`, `TRUE`, `False`, `FALSE`, as YAML has them).
    public static func boolean(_ text: String) throws(Problem) -> Bool {
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw Problem("expected true or false, got \(ConfigurationText.quote(text))")
        }
    }

    /// A dotted quad without leading zeros.
    public static func ipv4Address(_ text: String) throws(Problem) -> IPv4Address {
        guard let address = IPv4Address(text) else {
            throw Problem("\(ConfigurationText.quote(text)) is not a valid IPv4 address")
        }
        return address
    }

    /// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`.
    public static func macAddress(_ text: String) throws(Problem) -> MACAddress {
        guard let mac = MACAddress(text) else {
            throw Problem("\(ConfigurationText.quote(text)) is not a valid MAC address (expected aa:bb:cc:dd:ee:ff)")
        }
        return mac
    }

    /// Why a MAC that `MACAddress.isUnicast` refuses is refused.
    public static func notUnicastMessage(_ mac: MACAddress) -> String {
        mac == .zero ? "\(mac) is the all-zero MAC address" : "\(mac) is a multicast MAC address"
    }

    /// The value of a plain decimal integer; `nil` when it has too many digits for `Int`
    /// (out of every range).
    private static func decimal(_ text: String) throws(Problem) -> Int? {
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw Problem("expected an integer, got \(ConfigurationText.quote(text))")
        }
        guard digits.count == 1 || digits.first != "0" else {
            throw Problem("expected a decimal integer without leading zeros, got \(ConfigurationText.quote(text))")
        }
        return Int(text)
    }

    private static func outOfRange(_ text: String, _ range: ClosedRange<Int>) -> String {
        "\(text) is out of range (\(range.lowerBound)..\(range.upperBound))"
    }
}
