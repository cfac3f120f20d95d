import Yams

/// Typed access to a composed YAML node tree, with the path of every value, so that
/// each error names the field it is about. Unknown and duplicate keys are rejected.
enum YAMLReader {
    /// Parses `yaml` into a node tree; `nil` for an empty document.
    static func compose(_ yaml: String) throws(ConfigurationError) -> Node? {
        do {
            return try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigurationError(path: "(yaml)", message: describe(error))
        } catch {
            throw ConfigurationError(
                path: "(yaml)", message: ConfigurationText.sanitize(String(describing: error), limit: 200))
        }
    }

    /// A one-line rendering of a Yams error with its position.
    static func describe(_ error: YamlError) -> String {
        func oneLine(_ context: YamlError.Context?, _ problem: String, _ mark: Mark) -> String {
            var s = "line \(mark.line), column \(mark.column): \(problem)"
            if let context {
                s += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
            }
            return ConfigurationText.sanitize(s, limit: 200)
        }
        switch error {
        case let .scanner(context, problem, mark, _),
             let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            return oneLine(context, problem, mark)
        case let .reader(problem, offset, _, _):
            let at = offset.map { " at character \($0)" } ?? ""
            return ConfigurationText.sanitize("cannot read the input\(at): \(problem)", limit: 200)
        default:
            return ConfigurationText.sanitize(String(describing: error), limit: 200)
        }
    }

    // MARK: Paths

    static func child(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    static func item(_ path: String, _ index: Int) -> String { "\(path)[\(index)]" }

    // MARK: Node descriptions

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar = node else { return false }
        return node.tag.description == Tag.Name.null.rawValue
    }

    /// How a node is shown in "expected X, got Y".
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s):
            if isNull(node) { return "nothing" }
            if isQuoted(s) { return "the quoted string \"\(ConfigurationText.sanitize(s.string))\"" }
            return ConfigurationText.quote(s.string)
        }
    }

    static func isQuoted(_ s: Node.Scalar) -> Bool {
        switch s.style {
        case .singleQuoted, .doubleQuoted, .literal, .folded: true
        case .any, .plain: false
        }
    }

    // MARK: Scalars

    /// The text of a scalar (any non-null scalar: `name: 123` is the string "123").
    static func string(_ node: Node, _ path: String, expected: String = "a string") throws(ConfigurationError) -> String {
        guard case .scalar(let s) = node else {
            throw ConfigurationError(path: path, message: "expected \(expected), got \(describe(node))")
        }
        if isNull(node) { throw ConfigurationError(path: path, message: "missing value") }
        return s.string
    }

    /// A plain (unquoted) decimal integer in `range`.
    static func int(_ node: Node, _ path: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard case .scalar(let s) = node else {
            throw ConfigurationError(path: path, message: "expected an integer, got \(describe(node))")
        }
        if isNull(node) { throw ConfigurationError(path: path, message: "missing value") }
        let text = s.string
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !isQuoted(s), !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ConfigurationError(path: path, message: "expected an integer, got \(describe(node))")
        }
        guard digits.count == 1 || digits.first != "0" else {
            throw ConfigurationError(
                path: path, message: "expected a decimal integer without leading zeros, got \(describe(node))")
        }
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError(
                path: path,
                message: "\(ConfigurationText.sanitize(text)) is out of range (\(range.lowerBound)..\(range.upperBound))")
        }
        return value
    }

    /// `true` or `false` (also `True`/`TRUE`/`False`/`FALSE`), unquoted.
    static func bool(_ node: Node, _ path: String) throws(ConfigurationError) -> Bool {
        guard case .scalar(let s) = node else {
            throw ConfigurationError(path: path, message: "expected true or false, got \(describe(node))")
        }
        if isNull(node) { throw ConfigurationError(path: path, message: "missing value") }
        if !isQuoted(s) {
            switch s.string {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            default: break
            }
        }
        throw ConfigurationError(path: path, message: "expected true or false, got \(describe(node))")
    }

    /// The items of a list.
    static func sequence(_ node: Node, _ path: String) throws(ConfigurationError) -> [Node] {
        if isNull(node) { throw ConfigurationError(path: path, message: "missing value") }
        guard case .sequence(let seq) = node else {
            throw ConfigurationError(path: path, message: "expected a list, got \(describe(node))")
        }
        return Array(seq)
    }
}

/// The keys of one YAML mapping, checked against the keys the schema allows.
struct MappingReader {
    let path: String
    private var values: [String: Node] = [:]

    init(_ node: Node, path: String, allowed: [String]) throws(ConfigurationError) {
        self.path = path
        if YAMLReader.isNull(node) { throw ConfigurationError(path: path, message: "missing value") }
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError(
                path: path, message: "expected a mapping, got \(YAMLReader.describe(node))")
        }
        for (keyNode, value) in mapping {
            guard case .scalar(let k) = keyNode, !YAMLReader.isNull(keyNode) else {
                throw ConfigurationError(
                    path: path, message: "expected a key name, got \(YAMLReader.describe(keyNode)) as a key")
            }
            let key = k.string
            let keyPath = YAMLReader.child(path, ConfigurationText.sanitize(key))
            guard allowed.contains(key) else {
                throw ConfigurationError(
                    path: keyPath,
                    message: "unknown key (expected one of: \(allowed.joined(separator: ", ")))")
            }
            guard values[key] == nil else {
                throw ConfigurationError(path: keyPath, message: "duplicate key")
            }
            values[key] = value
        }
    }

    func path(_ key: String) -> String { YAMLReader.child(path, key) }

    /// The value of an optional key; `nil` when absent, an error when present but null.
    func optional(_ key: String) throws(ConfigurationError) -> Node? {
        guard let node = values[key] else { return nil }
        if YAMLReader.isNull(node) { throw ConfigurationError(path: path(key), message: "missing value") }
        return node
    }

    func required(_ key: String) throws(ConfigurationError) -> Node {
        guard let node = try optional(key) else {
            throw ConfigurationError(path: path(key), message: "missing required key")
        }
        return node
    }

    // Typed shortcuts.

    func string(_ key: String) throws(ConfigurationError) -> String {
        try YAMLReader.string(required(key), path(key))
    }

    func int(_ key: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let node = try optional(key) else { return nil }
        return try YAMLReader.int(node, path(key), range)
    }

    func int(_ key: String, _ range: ClosedRange<Int>, default value: Int) throws(ConfigurationError) -> Int {
        try int(key, range) ?? value
    }

    func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        guard let node = try optional(key) else { return nil }
        return try YAMLReader.bool(node, path(key))
    }

    func sequence(_ key: String) throws(ConfigurationError) -> [Node] {
        guard let node = try optional(key) else { return [] }
        return try YAMLReader.sequence(node, path(key))
    }
}
