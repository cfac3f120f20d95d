// Yams's own libyaml (Yams depends on it; it is not a product of its own), for its event
// parser: see `checkNesting`.
internal import CYaml
import Yams

/// Typed access to a composed YAML node tree, with the path of every value, so that
/// each error names the field it is about. Unknown and duplicate keys are rejected.
enum YAMLReader {
    /// How deep collections may nest, an alias counting as deep as what it stands for.
    /// The deepest valid configuration nests 4 deep.
    static let maxNesting = 64

    /// Parses `yaml` into a node tree; `nil` for an empty document.
    static func compose(_ yaml: String) throws(ConfigurationError) -> Node? {
        try checkNesting(yaml)
        do {
            return try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigurationError(path: "(yaml)", message: describe(error))
        } catch {
            throw ConfigurationError(
                path: "(yaml)", message: ConfigurationText.sanitize(String(describing: error), limit: 200))
        }
    }

    /// Refuses a document nested deeper than `maxNesting` before Yams composes it: Yams
    /// builds (and frees) the node tree recursively, and a file nested some thousands
    /// deep overflowed the stack. libyaml's event parser keeps its own stack, so this
    /// walk does not recurse. A syntax error ends the walk, for `compose` to report it
    /// in Yams's words: Yams meets it at the same place, no deeper.
    static func checkNesting(_ yaml: String) throws(ConfigurationError) {
        var text = yaml
        let tooDeep = text.withUTF8 { firstTooDeep(in: $0) }
        if let mark = tooDeep {
            throw ConfigurationError(
                path: "(yaml)",
                message: "nesting deeper than \(maxNesting) levels (line \(mark.line + 1), column \(mark.column + 1))")
        }
    }

    /// Where the document first nests deeper than `maxNesting`, or `nil`.
    private static func firstTooDeep(in bytes: UnsafeBufferPointer<UInt8>) -> yaml_mark_t? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        // Per open collection, the height of its tallest child so far; per anchor, the
        // height of its node (a scalar 0, a collection 1 more than its tallest child).
        var open: [(anchor: String?, tallest: Int)] = []
        var heights: [String: Int] = [:]
        func child(height: Int) {
            if !open.isEmpty { open[open.count - 1].tallest = max(open[open.count - 1].tallest, height) }
        }
        func name(_ anchor: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            anchor.map { String(cString: $0) }
        }
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
            defer { yaml_event_delete(&event) }
            switch event.type {
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                let anchor = event.type == YAML_SEQUENCE_START_EVENT
                    ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                open.append((name(anchor), 0))
                if open.count > maxNesting { return event.start_mark }
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let closed = open.removeLast()
                if let anchor = closed.anchor { heights[anchor] = closed.tallest + 1 }
                child(height: closed.tallest + 1)
            case YAML_SCALAR_EVENT:
                if let anchor = name(event.data.scalar.anchor) { heights[anchor] = 0 }
            case YAML_ALIAS_EVENT:
                let height = name(event.data.alias.anchor).flatMap { heights[$0] } ?? 0
                if open.count + height > maxNesting { return event.start_mark }
                child(height: height)
            case YAML_STREAM_END_EVENT:
                return nil
            default:
                break
            }
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

    /// The text of a plain (unquoted) scalar, for a value that `ValueRules` reads.
    static func plain(_ node: Node, _ path: String, expected: String) throws(ConfigurationError) -> String {
        if isNull(node) { throw ConfigurationError(path: path, message: "missing value") }
        guard case .scalar(let s) = node, !isQuoted(s) else {
            throw ConfigurationError(path: path, message: "expected \(expected), got \(describe(node))")
        }
        return s.string
    }

    /// A value read by one of `ValueRules`' rules; its problem is the field's.
    static func value<T>(_ path: String, _ rule: () throws(ValueRules.Problem) -> T) throws(ConfigurationError) -> T {
        do {
            return try rule()
        } catch {
            throw ConfigurationError(path: path, message: error.message)
        }
    }

    /// A plain (unquoted) decimal integer in `range`.
    static func int(_ node: Node, _ path: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        let text = try plain(node, path, expected: "an integer")
        return try value(path) { () throws(ValueRules.Problem) in try ValueRules.integer(text, in: range) }
    }

    /// `true` or `false` (also `True`/`TRUE`/`False`/`FALSE`), unquoted.
    static func bool(_ node: Node, _ path: String) throws(ConfigurationError) -> Bool {
        let text = try plain(node, path, expected: "true or false")
        return try value(path) { () throws(ValueRules.Problem) in try ValueRules.boolean(text) }
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
