import Atomics

// swift-atomics' storage types under names that do not collide with the standard
// library's Synchronization module (which has its own `AtomicRepresentation`). Shared
// tables are arrays of these in raw memory, accessed through their static atomic
// operations, so no class and no reference count is involved.
public typealias AtomicWord = UnsafeAtomic<UInt64>.Storage
public typealias AtomicFlag = UnsafeAtomic<Bool>.Storage
public typealias AtomicPointer = UnsafeAtomic<UnsafeRawPointer?>.Storage
