namespace Ninjax

open System
open System.Collections
open System.Collections.Generic

/// The keys a running program read, modified or created (World's bookkeeping): a persistent set
/// that adds a key and joins two sets in O(1), by keeping them as a log, so that every get and
/// put of a training step costs one small allocation rather than a balanced tree's path copy and
/// its string comparisons. The first question about its members (Contains, Count, enumeration,
/// which is distinct and in ordinal order) collects the log into a hash set, once. A log that
/// grows long with repeats (a loop reading the same keys many times) is collected as it goes, so
/// its memory stays proportional to its distinct keys. Immutable: Add and Union return new sets.
[<Sealed; AllowNullLiteral>]
type KeySet private (key: string, rest: KeySet, other: KeySet, flat: HashSet<string>, size: int, compactAt: int) =
    // A node is one of: the empty set (everything null, size 0); a key added in front of `rest`;
    // the join of `rest` and `other` (key null); a collected set (`flat`, key and rest null).
    // `size` counts the keys logged below it, repeats included (a flat node counts its keys);
    // `compactAt` is the size at which Add collects the log into a flat node.

    // The distinct keys in ordinal order and their lookup, collected on the first question
    // (two threads racing build equal sets).
    let mutable collected: string[] = null
    let mutable lookup: HashSet<string> = null

    /// The log length below which Add never collects.
    static let minimumCompaction = 1024

    static let empty = KeySet(null, null, null, null, 0, minimumCompaction)

    member private _.Key = key
    member private _.Rest = rest
    member private _.Other = other
    member private _.Flat = flat
    member private _.Size = size
    member private _.CompactAt = compactAt

    /// The distinct keys, as a hash set (shared: never changed after it is built).
    member private this.Lookup: HashSet<string> =
        match lookup with
        | null ->
            let seen =
                match flat with
                | null -> HashSet<string>(StringComparer.Ordinal)
                | f when isNull key && isNull rest -> f
                | _ -> HashSet<string>(StringComparer.Ordinal)
            if not (obj.ReferenceEquals(seen, flat)) then
                let pending = Stack<KeySet>()
                pending.Push this
                while pending.Count > 0 do
                    let mutable node = pending.Pop()
                    while not (isNull node) do
                        if not (isNull node.Key) then
                            seen.Add node.Key |> ignore
                            node <- node.Rest
                        elif not (isNull node.Rest) then
                            pending.Push node.Other
                            node <- node.Rest
                        else
                            if not (isNull node.Flat) then seen.UnionWith node.Flat
                            node <- null
            lookup <- seen
            seen
        | s -> s

    member private this.Collected: string[] =
        match collected with
        | null ->
            let keys = Array.ofSeq this.Lookup
            Array.Sort(keys, StringComparer.Ordinal)
            collected <- keys
            keys
        | keys -> keys

    /// The set of no keys.
    static member Empty: KeySet = empty

    /// The set collected into one node, for a log that has grown long.
    static member private Collect(s: KeySet) : KeySet =
        let keys = HashSet<string>(s.Lookup, StringComparer.Ordinal)
        KeySet(null, null, null, keys, keys.Count, max minimumCompaction (2 * keys.Count))

    /// Both sets' keys, in O(1) (amortized, as Add).
    static member Union(a: KeySet, b: KeySet) : KeySet =
        if isNull a then nullArg "a"
        if isNull b then nullArg "b"
        if a.IsEmpty then b
        elif b.IsEmpty then a
        else
            let joined = KeySet(null, a, b, null, a.Size + b.Size, max a.CompactAt b.CompactAt)
            if joined.Size < joined.CompactAt then joined else KeySet.Collect joined

    /// This set with <paramref name="key"/> added, in O(1) (amortized: a log that grows long
    /// with repeats is collected every so often).
    member this.Add(key: string) : KeySet =
        if isNull key then nullArg "key"
        let added = KeySet(key, this, null, null, size + 1, compactAt)
        if size + 1 < compactAt then added else KeySet.Collect added

    /// True when no key was added.
    member _.IsEmpty: bool = size = 0

    /// True when the set holds <paramref name="key"/>.
    member this.Contains(key: string) : bool = not this.IsEmpty && this.Lookup.Contains key

    /// The number of distinct keys.
    member this.Count: int = if this.IsEmpty then 0 else this.Lookup.Count

    /// The distinct keys in ordinal order.
    member this.ToArray() : string[] = if this.IsEmpty then [||] else Array.copy this.Collected

    /// The distinct keys in no particular order, without sorting them: for code that treats
    /// each key on its own (a call's return).
    member internal this.Unordered: IReadOnlyCollection<string> =
        if this.IsEmpty then Array.empty<string> :> IReadOnlyCollection<string> else this.Lookup :> IReadOnlyCollection<string>

    /// The keys in ordinal order, comma-separated, for messages.
    override this.ToString() = if this.IsEmpty then "" else String.Join(", ", this.Collected)

    interface IReadOnlyCollection<string> with
        member this.Count = this.Count
        member this.GetEnumerator() : IEnumerator<string> =
            ((if this.IsEmpty then [||] else this.Collected) :> seq<string>).GetEnumerator()
        member this.GetEnumerator() : IEnumerator =
            ((if this.IsEmpty then [||] else this.Collected) :> IEnumerable).GetEnumerator()

/// Functions over key sets.
[<RequireQualifiedAccess>]
module KeySet =

    /// The set of no keys.
    let empty = KeySet.Empty

    /// Both sets' keys, in O(1).
    let union (a: KeySet) (b: KeySet) = KeySet.Union(a, b)

    /// The keys as an F# set.
    let toSet (keys: KeySet) : Set<string> = Set.ofSeq keys
