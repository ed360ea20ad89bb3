namespace Ninjax

open System.Collections.Generic
open TorchSharp

/// One entry a purified call wrote (created or modified): its key, the tensor the caller's state
/// held under it (null for a created key) and the one the call leaves there.
[<Struct; NoEquality; NoComparison>]
type internal WrittenEntry = { Key: string; Before: torch.Tensor; After: torch.Tensor }

/// What a donating call (Options.donate) knows about the state its caller handed over: which
/// tensors it may overwrite in place, and which it did. One exists per donating call.
[<Sealed; AllowNullLiteral>]
type Donation internal (input: State) =
    // How many keys of the donated state hold each tensor: a tensor held under two keys must not
    // be overwritten for one of them. Counted on first use (one pass over the state), unless the
    // donating call that made the state handed its count on (HandOn), as a loop's calls do.
    // Tensors are told apart by their native handle, which no two live Tensor objects share;
    // hashing the objects themselves is slower.
    let mutable holders: Dictionary<nativeint, int> = input.Holders
    let overwritten = HashSet<nativeint>()
    let mutable granted = 0

    /// The state the caller donated.
    member internal _.Input = input

    /// How many keys of the donated state hold this tensor object (0 for tensors it never held).
    member internal _.Holders(tensor: torch.Tensor) : int =
        if isNull holders then
            holders <- Dictionary<nativeint, int>(input.Count)
            for kv in input.Entries do
                if not kv.Value.IsInvalid then
                    let h = kv.Value.Handle
                    match holders.TryGetValue h with
                    | true, n -> holders.[h] <- n + 1
                    | _ -> holders.[h] <- 1
        if tensor.IsInvalid then 0
        else
            match holders.TryGetValue tensor.Handle with
            | true, n -> n
            | _ -> 0

    /// The changes to the count that a call's writes make, while the tensors of both the donated
    /// state and the new one are alive: one per key the call created or modified. Nothing when
    /// nothing was counted.
    member internal _.Changes(written: WrittenEntry[]) : struct (nativeint * int)[] =
        if isNull holders then [||]
        else
            let changes = ResizeArray<struct (nativeint * int)>(2 * written.Length)
            for w in written do
                if not (isNull w.Before) && not w.Before.IsInvalid then changes.Add(struct (w.Before.Handle, -1))
                if not w.After.IsInvalid then changes.Add(struct (w.After.Handle, 1))
            changes.ToArray()

    /// Hands the count on to the state the call returns, with the changes its writes made: the
    /// donated state is gone, so its count becomes the new state's.
    member internal _.HandOn(output: State, changes: struct (nativeint * int)[]) : unit =
        if not (isNull holders) then
            for struct (handle, delta) in changes do
                match holders.TryGetValue handle with
                | true, n when n + delta = 0 -> holders.Remove handle |> ignore
                | true, n -> holders.[handle] <- n + delta
                | _ -> if delta > 0 then holders.[handle] <- delta
            output.Holders <- holders

    /// True when the tensor is the donated state's, under exactly one key, and contiguous (no two
    /// elements share memory, as in an expanded view, which in-place writes reject half-way): the
    /// call may write the entry's next value into it instead of into a new tensor.
    member internal this.MayOverwrite(tensor: torch.Tensor) : bool =
        let may = this.Holders tensor = 1 && tensor.is_contiguous ()
        if may then granted <- granted + 1
        may

    /// How many times the call was allowed to overwrite a tensor: from the first, a failure may
    /// leave the donated state half updated (writes through raw memory bump no version counter).
    member internal _.GrantedCount: int = granted

    /// Records a tensor the call overwrote in place.
    member internal _.Overwrote(tensor: torch.Tensor) : unit = overwritten.Add tensor.Handle |> ignore

    /// True when the call overwrote this tensor in place.
    member internal _.WasOverwritten(tensor: torch.Tensor) : bool = not tensor.IsInvalid && overwritten.Contains tensor.Handle

    /// How many tensors the call overwrote in place.
    member internal _.OverwrittenCount: int = overwritten.Count
