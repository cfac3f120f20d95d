/// A configuration problem: which field (`path`, e.g. `tunnels[0].vni`) and what is wrong
/// with it (`message`, which quotes the offending value). `description` is one line,
/// `"<path>: <message>"`, fit for a log line or a terminal.
///
/// Paths: mapping keys are joined with `.`, list items are `[index]` (from 0), e.g.
/// `flood[2].tunnels[0]`. Malformed YAML has the path `(yaml)`; problems with the
/// document as a whole (not a mapping) or with reading the file have the empty path.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String {
        let line = path.isEmpty ? message : "\(path): \(message)"
        // Every value is quoted with `ConfigurationText.quote`, which escapes line breaks;
        // this is only a last guard so that the error always stays on one line.
        return String(line.map { $0.isNewline ? " " : $0 })
    }
}

/// Text helpers shared by the parser, the validator and tunnelctl's messages.
public enum ConfigurationText {
    /// A user-supplied value made safe for a one-line message: control characters are
    /// escaped and very long values are shortened.
    public static func sanitize(_ text: String, limit: Int = 80) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                out += "…"
                break
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F
                    || scalar.properties.generalCategory == .lineSeparator
                    || scalar.properties.generalCategory == .paragraphSeparator
                    || scalar.properties.generalCategory == .control {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            count += 1
        }
        return out
    }

    /// `'value'`, sanitized.
    public static func quote(_ text: String) -> String { "'" + sanitize(text) + "'" }
}
