namespace Ninjax

open System.Collections.Generic
open TorchSharp

/// What a donating call (Options.donate) knows about the state its caller handed over: which
/// tensors it may overwrite in place, and which it did. One exists per donating call.
[<Sealed; AllowNullLiteral>]
type Donation internal (input: State) =
    // How many keys of the donated state hold each tensor, counted on first use (one pass over the
    // state): a tensor held under two keys must not be overwritten for one of them. Tensors are
    // told apart by their native handle, which no two live Tensor objects share; hashing the
    // objects themselves is slower.
    let mutable holders: Dictionary<nativeint, int> = null
    let overwritten = HashSet<nativeint>()

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

    /// True when the tensor is the donated state's, under exactly one key: the call may write the
    /// entry's next value into it instead of into a new tensor.
    member internal this.MayOverwrite(tensor: torch.Tensor) : bool = this.Holders tensor = 1

    /// Records a tensor the call overwrote in place.
    member internal _.Overwrote(tensor: torch.Tensor) : unit = overwritten.Add tensor.Handle |> ignore

    /// True when the call overwrote this tensor in place.
    member internal _.WasOverwritten(tensor: torch.Tensor) : bool = not tensor.IsInvalid && overwritten.Contains tensor.Handle

    /// How many tensors the call overwrote in place.
    member internal _.OverwrittenCount: int = overwritten.Count
