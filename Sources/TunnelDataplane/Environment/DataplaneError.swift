/// A start-up failure, worded for the operator: what went wrong and what to do about it.
public struct DataplaneError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
