namespace Ninjax

open System
open System.Collections
open System.Collections.Generic
open TorchSharp

/// Keys of the state: paths such as <c>model/h1/w</c>, segments of <c>[A-Za-z0-9_]+</c> joined by <c>/</c>.
module Key =

    let private isNameChar (c: char) =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c = '_'

    /// The reason a key is malformed, or None when it is well formed. Hand-written rather than a
    /// regex because it runs on every write.
    let problem (key: string) : string option =
        if isNull key then Some "a key cannot be null"
        elif key.Length = 0 then Some "a key cannot be empty"
        else
            let mutable bad = None
            let mutable segmentStart = 0
            for i in 0 .. key.Length do
                if bad.IsNone then
                    if i = key.Length || key.[i] = '/' then
                        if i = segmentStart then
                            bad <- Some(sprintf "key '%s' has an empty segment at position %d" key i)
                        segmentStart <- i + 1
                    elif not (isNameChar key.[i]) then
                        bad <-
                            Some(
                                sprintf
                                    "key '%s' has the character '%c' at position %d; segments may only hold letters, digits and underscores"
                                    key key.[i] i
                            )
            bad

    /// Checks a whole key and raises ArgumentException naming it when it is malformed.
    let validate (key: string) : unit =
        match problem key with
        | Some why -> raise (ArgumentException(sprintf "Invalid state key: %s." why, "key"))
        | None -> ()

    /// Checks a single name (one segment, no <c>/</c>), as used for module and entry names.
    let validateName (name: string) : unit =
        match problem name with
        | Some why -> raise (ArgumentException(sprintf "Invalid name: %s." why, "name"))
        | None when name.Contains '/' ->
            raise (ArgumentException(sprintf "Invalid name '%s': a name is a single segment without '/'." name, "name"))
        | None -> ()

    /// Joins a scope and a name; the empty scope is the root.
    let join (scope: string) (name: string) : string =
        if String.IsNullOrEmpty scope then name else scope + "/" + name

    /// True when <paramref name="key"/> is <paramref name="prefix"/> itself or lies under it.
    let isUnder (prefix: string) (key: string) : bool =
        key.StartsWith(prefix, StringComparison.Ordinal)
        && (key.Length = prefix.Length || key.[prefix.Length] = '/')

/// Shape checks for the per-step path. <c>Tensor.shape</c> allocates and pins a new array on
/// every call (about 1.5 us in TorchSharp 0.107); <c>Dimensions</c> and <c>size(i)</c> are
/// plain native calls, so the checks on every get, put and optimizer step use these.
module internal Shape =

    /// True when both tensors have the same shape.
    let same (a: torch.Tensor) (b: torch.Tensor) : bool =
        let rank = int a.Dimensions
        if int64 rank <> b.Dimensions then false
        else
            let mutable i = 0
            while i < rank && a.size i = b.size i do
                i <- i + 1
            i = rank

    /// True when the tensor has the given shape.
    let is (shape: int64[]) (t: torch.Tensor) : bool =
        let rank = t.Dimensions
        if rank <> int64 shape.Length then false
        else
            let mutable i = 0
            while i < shape.Length && t.size i = shape.[i] do
                i <- i + 1
            i = shape.Length

/// What states that differ only in their values share: the same keys, and under each key the
/// same shape and dtype. A step that only writes existing entries hands its token on, so what
/// is derived from the keys (their sorted index, the parameters of a module) is computed once
/// per structure, not once per step. Holds strings only, never tensors.
[<Sealed; AllowNullLiteral>]
type internal Structure() =
    let mutable sorted: string[] = null

    /// The keys in ordinal order (F#'s Map enumerates them in that order), built on first use
    /// from the entries of any state with this structure.
    member _.SortedKeys(entries: Map<string, torch.Tensor>) : string[] =
        match sorted with
        | null ->
            let keys = Array.zeroCreate entries.Count
            let mutable i = 0
            for kv in entries do
                keys.[i] <- kv.Key
                i <- i + 1
            sorted <- keys
            keys
        | keys -> keys

    /// The keys at or under a prefix (the prefix itself, then <c>prefix/...</c>), by binary
    /// search: O(log n + k). Keys hold only letters, digits, '_' and '/', and '/' sorts before
    /// all of them, so the keys under a prefix follow it without a gap.
    member this.KeysUnder(entries: Map<string, torch.Tensor>, prefix: string) : ArraySegment<string> =
        let keys = this.SortedKeys entries
        let mutable lo = 0
        let mutable hi = keys.Length
        while lo < hi do
            let mid = (lo + hi) >>> 1
            if String.CompareOrdinal(keys.[mid], prefix) < 0 then lo <- mid + 1 else hi <- mid
        let mutable last = lo
        while last < keys.Length && Key.isUnder prefix keys.[last] do
            last <- last + 1
        ArraySegment(keys, lo, last - lo)

/// An immutable map from keys to tensors: the whole state of a model, its optimizer and anything
/// else its modules keep. Updates return a new state and share structure with the old one, so
/// a step that touches a few entries costs O(k log n), never a copy of the state.
[<Sealed; AllowNullLiteral>]
type State internal (entries: Map<string, torch.Tensor>, structure: Structure) =

    // Set when the state is donated to a call (Options.donate): that call owns its tensors now.
    let mutable donatedTo: string = null
    let mutable donatedIn = Language.FSharp

    // How many keys hold each tensor (by native handle), when a donating call that returned this
    // state handed its count on, so that donating this state again costs no pass over it.
    let mutable holders: System.Collections.Generic.Dictionary<nativeint, int> = null

    // The donating call running on this state right now, if any (see Claim).
    [<DefaultValue>]
    val mutable private claimedBy: string

    let live () =
        if not (isNull donatedTo) then
            raise (
                InvalidOperationException(
                    sprintf
                        "This state was donated to %s (%s): that call may have updated its tensors in place and freed the entries it replaced. Use the state the call returned, or purify without donation to keep this one."
                        donatedTo (Text.code donatedIn "Options.donating" "donate: true")
                )
            )
        entries

    /// A state of its own structure.
    internal new(entries: Map<string, torch.Tensor>) = State(entries, Structure())

    /// The empty state.
    static member Empty = State(Map.empty)

    /// What this state shares with every state derived from it by writes of existing entries.
    member internal _.Structure = structure

    /// How many of this state's keys hold each tensor, by native handle, when known (see
    /// Donation); null otherwise.
    member internal _.Holders
        with get () = holders
        and set (value: System.Collections.Generic.Dictionary<nativeint, int>) = holders <- value

    /// The state with an existing entry's tensor replaced by one of the same shape and dtype
    /// (the caller checks both): it keeps this state's structure.
    member internal _.Replace(key: string, value: torch.Tensor) = State((live ()).Add(key, value), structure)

    /// The keys at or under a prefix, in order, in O(log n + k).
    member internal _.KeysUnder(prefix: string) : ArraySegment<string> = structure.KeysUnder(live (), prefix)

    /// The entries as an F# map (shared, not copied).
    member internal _.Entries = live ()

    /// Hands the state over to a donating call; every later use raises, naming the call in the
    /// language of the code that made it.
    member internal _.Donate(callName: string, language: Language) =
        donatedIn <- language
        donatedTo <- callName

    /// Claims the state for a donating call that starts now: a second call on it before the
    /// first returns (another thread, a re-entrant call) fails instead of racing its in-place
    /// updates and frees. Release with Release.
    member internal this.Claim(callName: string) =
        let holder = Threading.Interlocked.CompareExchange(&this.claimedBy, callName, null)
        if not (isNull holder) then
            raise (
                InvalidOperationException(
                    sprintf
                        "This state is being donated to %s, which is still running (on another thread, or further up this one): %s cannot use it at the same time, because the running call updates its tensors in place and frees the entries it replaces. Wait for that call and use the state it returns."
                        holder callName
                )
            )

    /// Ends the claim of a donating call.
    member internal this.Release() = Threading.Volatile.Write(&this.claimedBy, null)

    /// The donating call running on this state right now, or null.
    member internal this.ClaimedBy = Threading.Volatile.Read(&this.claimedBy)

    /// True once the state was donated to a call (Options.donate) and may no longer be used.
    member _.IsDonated = not (isNull donatedTo)

    /// The number of entries.
    member _.Count = (live ()).Count

    /// The keys in ordinal order.
    member _.Keys: IEnumerable<string> = live () |> Seq.map (fun kv -> kv.Key)

    /// The tensors in the order of their keys.
    member _.Values: IEnumerable<torch.Tensor> = live () |> Seq.map (fun kv -> kv.Value)

    /// The tensor stored under a key; KeyNotFoundException naming the key when it is absent.
    member _.Item
        with get (key: string) =
            match (live ()).TryGetValue key with
            | true, t -> t
            | _ -> raise (KeyNotFoundException(sprintf "State has no entry '%s'." key))

    /// True when the state holds the key.
    member _.ContainsKey(key: string) = (live ()).ContainsKey key

    /// Looks a key up without raising.
    member _.TryGetValue(key: string, [<Runtime.InteropServices.Out>] value: byref<torch.Tensor>) =
        (live ()).TryGetValue(key, &value)

    /// A short description listing the keys and shapes.
    override _.ToString() =
        if not (isNull donatedTo) then sprintf "State {donated to %s}" donatedTo
        else
            let shown =
                entries
                |> Seq.truncate 20
                |> Seq.map (fun kv -> sprintf "%s: %s %O" kv.Key (Text.shape kv.Value) kv.Value.dtype)
                |> String.concat ", "
            let more = if entries.Count > 20 then sprintf ", ... (%d entries)" entries.Count else ""
            "State {" + shown + more + "}"

    interface IReadOnlyDictionary<string, torch.Tensor> with
        member this.Item with get key = this.[key]
        member this.Keys = this.Keys
        member this.Values = this.Values
        member this.ContainsKey key = this.ContainsKey key
        member this.TryGetValue(key, value) = this.TryGetValue(key, &value)
        member this.Count = this.Count
        member _.GetEnumerator() : IEnumerator<KeyValuePair<string, torch.Tensor>> =
            (live () :> seq<KeyValuePair<string, torch.Tensor>>).GetEnumerator()
        member _.GetEnumerator() : IEnumerator =
            (live () :> IEnumerable).GetEnumerator()

/// Functions over states.
[<RequireQualifiedAccess>]
module State =

    /// The empty state.
    let empty = State.Empty

    /// Builds a state from key/tensor pairs, validating every key; a repeated key is an error.
    let ofSeq (pairs: seq<string * torch.Tensor>) : State =
        let mutable m = Map.empty
        for k, v in pairs do
            Key.validate k
            if isNull (box v) then raise (ArgumentNullException("value", sprintf "The tensor for key '%s' is null." k))
            if m.ContainsKey k then raise (ArgumentException(sprintf "Key '%s' appears twice." k, "pairs"))
            m <- m.Add(k, v)
        State m

    /// A state from pairs whose keys are known to be valid and distinct (derived from a
    /// state's keys): the per-step path builds these without validating each key again.
    let internal ofValidPairs (pairs: seq<string * torch.Tensor>) : State =
        State(Seq.fold (fun (m: Map<_, _>) (k, v) -> m.Add(k, v)) Map.empty pairs)

    /// Builds a state from an F# map, validating every key.
    let ofMap (map: Map<string, torch.Tensor>) : State = map |> Map.toSeq |> ofSeq

    /// Builds a state from any dictionary (for example one built in C#), validating every key.
    let ofDictionary (dict: IReadOnlyDictionary<string, torch.Tensor>) : State =
        dict |> Seq.map (fun kv -> kv.Key, kv.Value) |> ofSeq

    /// The entries as an F# map (no copy).
    let toMap (state: State) : Map<string, torch.Tensor> = state.Entries

    /// The entries as key/tensor pairs in key order.
    let toSeq (state: State) : seq<string * torch.Tensor> = state.Entries |> Map.toSeq

    /// The keys in key order.
    let keys (state: State) : string list = state.Entries |> Seq.map (fun kv -> kv.Key) |> List.ofSeq

    /// The number of entries.
    let count (state: State) = state.Count

    /// The tensor under a key, if any.
    let tryFind (key: string) (state: State) : torch.Tensor option = state.Entries.TryFind key

    /// The tensor under a key; KeyNotFoundException naming the key when absent.
    let find (key: string) (state: State) : torch.Tensor = state.[key]

    /// True when the state holds the key.
    let containsKey (key: string) (state: State) = state.Entries.ContainsKey key

    /// Adds or replaces one entry (no flags: this is plain data manipulation, not a module write).
    let add (key: string) (value: torch.Tensor) (state: State) : State =
        Key.validate key
        if isNull (box value) then raise (ArgumentNullException("value", sprintf "The tensor for key '%s' is null." key))
        State(state.Entries.Add(key, value))

    /// Removes an entry if present.
    let remove (key: string) (state: State) : State = State(state.Entries.Remove key)

    /// The entries whose key satisfies a predicate.
    let filter (predicate: string -> torch.Tensor -> bool) (state: State) : State =
        State(Map.filter predicate state.Entries)

    /// The entries at or under a key prefix (a key matches itself and everything below it).
    let under (prefix: string) (state: State) : State =
        let entries = state.Entries
        let mutable m = Map.empty
        for k in state.KeysUnder prefix do
            m <- m.Add(k, entries.[k])
        State m

    /// Both states' entries; where both hold a key, the right one wins.
    let merge (left: State) (right: State) : State =
        State(Map.fold (fun (acc: Map<_, _>) k v -> acc.Add(k, v)) left.Entries right.Entries)

    /// Applies a function to every tensor.
    let map (f: string -> torch.Tensor -> torch.Tensor) (state: State) : State =
        State(
            Map.map
                (fun k t ->
                    let mapped = f k t
                    if isNull (box mapped) then
                        raise (InvalidOperationException(sprintf "The mapping returned null for key '%s'; it must return a tensor for every entry." k))
                    mapped)
                state.Entries
        )

    /// Existing keys close to a missing one, for error messages: siblings under the same parent
    /// first, then keys sharing the longest prefix.
    let nearby (key: string) (state: State) : string list =
        let commonPrefix (a: string) (b: string) =
            let n = min a.Length b.Length
            let mutable i = 0
            while i < n && a.[i] = b.[i] do
                i <- i + 1
            i
        state.Entries
        |> Seq.map (fun kv -> kv.Key)
        |> Seq.sortByDescending (fun k -> commonPrefix key k, -abs (k.Length - key.Length))
        |> Seq.truncate 5
        |> List.ofSeq
