namespace Ninjax

open System
open System.Threading
open TorchSharp

/// The native memory of tensors that outlive a purified call, which the .NET GC cannot see.
/// Such a tensor (a new state entry, a tensor in the output) is freed by its finalizer once
/// nothing references it. Without donation a training loop replaces its parameters and moments
/// on every step, so the replaced tensors wait for a collection, and the GC, seeing only a few
/// small managed objects, collects rarely: resident memory climbs by hundreds of MB. So the
/// library counts the bytes of the tensors its calls hand out and, once a budget of them has
/// piled up since the last collection of the young generations, collects those generations at
/// the start of the next top-level call. A state dropped by the loop is young (it lived for one
/// step), so a generation-1 collection finds it, and its tensors' finalizers free their memory.
/// A donating call frees what it replaces itself and hands out only its output.
module internal NativeMemory =

    /// Bytes of handed-out tensors after which a collection is due: small against any model
    /// whose steps allocate it (a generation-1 collection of small young generations takes
    /// about 0.1 ms), large against what one step of a small model hands out (about 1 MB for
    /// the digits MLP, so one collection per 30 or so of its steps).
    [<Literal>]
    let Budget = 32L * 1024L * 1024L

    let mutable private pending = 0L
    let mutable private collections = GC.CollectionCount 1

    /// Counts a tensor that leaves a purified call alive.
    let handedOut (t: torch.Tensor) : unit =
        if not t.IsInvalid then Interlocked.Add(&pending, t.NumberOfElements * t.ElementSize) |> ignore

    /// Collects generations 0 and 1 when the budget is spent since the last collection of them
    /// (whoever started it); called before a top-level call starts, when the state the loop
    /// just dropped is garbage and the one it passes in is alive.
    let collectIfDue () : unit =
        let count = GC.CollectionCount 1
        if count <> collections then
            // The GC collected on its own since: it found what was garbage then.
            collections <- count
            Interlocked.Exchange(&pending, 0L) |> ignore
        elif Volatile.Read &pending >= Budget then
            Interlocked.Exchange(&pending, 0L) |> ignore
            GC.Collect(1, GCCollectionMode.Forced, true, false)
            collections <- GC.CollectionCount 1
