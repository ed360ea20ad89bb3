namespace Ninjax

open System
open System.Collections.Generic
open System.Runtime.InteropServices
open System.Text
open TorchSharp

/// A rank's share of a batch: rows <c>Start .. Start + Length - 1</c>, and the factor to scale
/// the share's mean loss by so that the average of the ranks' gradients is the gradient of the
/// whole batch's mean loss (exactly 1 when the batch divides evenly).
[<Struct>]
type BatchShare =
    {
        /// The first row of this rank's share.
        Start: int64
        /// The number of rows in this rank's share.
        Length: int64
        /// <c>Length * ranks / batch</c>: multiply the share's mean loss by it when shares differ
        /// in size (the last batch of an epoch, say); 1.0 when every rank has the same share.
        Weight: float
    }

/// Data-parallel training over MPI (see <see cref="Communicator"/>): every rank holds the whole
/// state, computes gradients on its share of each batch, and an optimizer made with
/// <c>Optimizer(transform, dataParallel = comm)</c> averages them across ranks (one all-reduce
/// per step over one flat buffer) before every rank applies the same update, so the
/// parameters stay identical everywhere. At start, <c>broadcast</c> gives every rank rank 0's
/// state, after checking that every rank holds the same keys, shapes and dtypes.
[<RequireQualifiedAccess>]
module DataParallel =

    // ---------------------------------------------------------------------------------
    // Small collectives over host values

    let private gatherInt64 (comm: Communicator) (value: int64) : int64[] =
        use _ = torch.no_grad ()
        use mine = torch.tensor [| value |]
        use all = comm.AllGather mine
        Array.init comm.Size (fun r -> all.[int64 r, 0L].ToInt64())

    /// Every rank's bytes, in rank order (lengths may differ: padded to the longest).
    let private gatherBytes (comm: Communicator) (bytes: byte[]) : byte[][] =
        let lengths = gatherInt64 comm (int64 bytes.Length)
        let longest = Array.max lengths
        use _ = torch.no_grad ()
        use mine = torch.zeros([| longest |], dtype = torch.uint8)
        if bytes.Length > 0 then bytes.AsSpan().CopyTo(mine.bytes)
        use all = comm.AllGather mine
        Array.init comm.Size (fun r ->
            use row = all.[int64 r]
            row.bytes.Slice(0, int lengths.[r]).ToArray())

    /// A 64-bit FNV-1a hash of a string, the same in every process.
    let private hashText (text: string) : int64 =
        let mutable h = 0xcbf29ce484222325UL
        for c in text do
            h <- (h ^^^ uint64 c) * 0x100000001b3UL
        int64 h

    /// A 64-bit hash of a tensor's bytes (its values, bit for bit), the same in every process.
    let private hashValues (t: torch.Tensor) : int64 =
        use _ = torch.no_grad ()
        let host = if t.device_type = DeviceType.CPU && t.is_contiguous () then t else t.cpu().contiguous ()
        let bytes = if host.numel () = 0L then Span<byte>.Empty else host.bytes
        let words = MemoryMarshal.Cast<byte, uint64>(bytes)
        let mutable h = 0x9E3779B97F4A7C15UL ^^^ uint64 bytes.Length
        for w in words do
            h <- (h ^^^ w) * 0xff51afd7ed558ccdUL
            h <- h ^^^ (h >>> 32)
        for i in words.Length * 8 .. bytes.Length - 1 do
            h <- (h ^^^ uint64 bytes.[i]) * 0x100000001b3UL
        int64 h

    // ---------------------------------------------------------------------------------
    // Checks across ranks

    let private describe (t: torch.Tensor) =
        sprintf "%s [%s]" (t.dtype.ToString().ToLowerInvariant()) (String.Join(", ", t.shape))

    /// One line per entry: key, tab, dtype and shape.
    let private layoutOf (state: State) : string[] =
        [| for KeyValue(k, t) in State.toMap state -> k + "\t" + describe t |]

    let private parseLayout (text: string) : Map<string, string> =
        if text.Length = 0 then Map.empty
        else
            text.Split('\n')
            |> Array.map (fun line -> let i = line.IndexOf '\t' in line.Substring(0, i), line.Substring(i + 1))
            |> Map.ofArray

    /// Checks that every rank holds the same keys, with the same dtypes and shapes; otherwise
    /// raises, on every rank alike, an error that lists each difference from rank 0 by key.
    /// One small all-gather when the layouts agree.
    [<CompiledName("CheckSameLayout")>]
    let checkSameLayout (comm: Communicator) (state: State) : unit =
        if isNull comm then raise (ArgumentNullException("comm"))
        if isNull state then raise (ArgumentNullException("state"))
        let text = String.Join("\n", layoutOf state)
        let hashes = gatherInt64 comm (hashText text)
        if hashes |> Array.exists (fun h -> h <> hashes.[0]) then
            let layouts = gatherBytes comm (Encoding.UTF8.GetBytes text) |> Array.map (Encoding.UTF8.GetString >> parseLayout)
            let reference = layouts.[0]
            let problems =
                [
                    for r in 1 .. comm.Size - 1 do
                        let other = layouts.[r]
                        for KeyValue(k, d) in reference do
                            match other.TryFind k with
                            | None -> yield sprintf "rank %d lacks '%s' (%s on rank 0)" r k d
                            | Some d' when d' <> d -> yield sprintf "'%s' is %s on rank %d but %s on rank 0" k d' r d
                            | Some _ -> ()
                        for KeyValue(k, d) in other do
                            if not (reference.ContainsKey k) then yield sprintf "rank %d has '%s' (%s), which rank 0 lacks" r k d
                ]
            let shown = problems |> List.truncate 20
            let more = if problems.Length > shown.Length then sprintf "; and %d more" (problems.Length - shown.Length) else ""
            raise (
                InvalidOperationException(
                    sprintf "%O: the ranks' states differ in layout, so they cannot train together: %s%s. Every rank must build the same model (same modules, sizes and optimizer) before the state is broadcast."
                        comm (String.Join("; ", shown)) more
                )
            )

    /// Checks that every rank holds bit-identical values (after the layout check); otherwise
    /// raises, on every rank alike, an error naming the keys whose values differ from rank 0's.
    /// One all-gather of a hash per entry; the values are hashed on the host.
    [<CompiledName("CheckInSync")>]
    let checkInSync (comm: Communicator) (state: State) : unit =
        checkSameLayout comm state
        let entries = State.toMap state |> Seq.toArray
        use _ = torch.no_grad ()
        use mine = torch.tensor (entries |> Array.map (fun kv -> hashValues kv.Value))
        use all = comm.AllGather mine
        let differing =
            [
                for i in 0 .. entries.Length - 1 do
                    let ranks = [ for r in 1 .. comm.Size - 1 do if all.[int64 r, int64 i].ToInt64() <> all.[0L, int64 i].ToInt64() then yield r ]
                    if not ranks.IsEmpty then yield sprintf "'%s' (ranks %s)" entries.[i].Key (String.Join(", ", ranks))
            ]
        if not differing.IsEmpty then
            raise (
                InvalidOperationException(
                    sprintf "%O: the ranks' values differ from rank 0's in %d entries: %s. Start every rank from the broadcast state and let the data-parallel optimizer apply every update."
                        comm differing.Length (String.Join(", ", differing |> List.truncate 20))
                )
            )

    // ---------------------------------------------------------------------------------
    // Starting together

    /// Rank 0's state on every rank: first checks that every rank holds the same keys, dtypes and
    /// shapes (an error lists each difference by key), then broadcasts the values in one
    /// broadcast per dtype. Rank 0 gets its state back unchanged; the other ranks get a new state
    /// of new tensors (on the devices of their own), and their own state is left as it was.
    /// Call it once at start, after Nj.init (or after loading a checkpoint on rank 0), so every
    /// rank starts from the same parameters and optimizer state whatever its seed.
    [<CompiledName("Broadcast")>]
    let broadcast (comm: Communicator) (state: State) : State =
        checkSameLayout comm state
        if comm.Size = 1 then state
        else
            use _ = torch.no_grad ()
            let entries = State.toMap state |> Seq.map (fun kv -> kv.Key, kv.Value) |> Array.ofSeq
            let received = Dictionary<string, torch.Tensor>()
            for dtype, group in entries |> Array.groupBy (fun (_, t) -> t.dtype) |> Array.sortBy (fun (d, _) -> int d) do
                let sizes = group |> Array.map (fun (_, t) -> t.numel ())
                let buffer =
                    if comm.IsRoot then torch.cat ([| for _, t in group -> t.detach().cpu().reshape(-1L) |], 0L)
                    else torch.empty([| Array.sum sizes |], dtype = dtype)
                comm.Broadcast(buffer, 0)
                if not comm.IsRoot then
                    let parts = buffer.split(sizes, 0L)
                    group
                    |> Array.iteri (fun i (k, t) ->
                        let value = parts.[i].reshape(t.shape).clone().``to``(t.device)
                        received.[k] <- value)
                    for p in parts do
                        p.Dispose()
                buffer.Dispose()
            if comm.IsRoot then state
            else State.ofValidPairs [| for k, _ in entries -> k, received.[k] |]

    /// The seed of this rank's randomness (dropout, noise, sampling) in a data-parallel job:
    /// the seed itself on rank 0 (so a job of one process draws as a plain run does) and a
    /// well-mixed derivation of the seed and the rank elsewhere, so ranks draw independently.
    /// Pass it to <c>Options.seeded</c> for the training call.
    [<CompiledName("Seed")>]
    let seed (comm: Communicator) (seed: int64) : int64 =
        if isNull comm then raise (ArgumentNullException("comm"))
        if comm.Rank = 0 then seed
        else
            // SplitMix64's finaliser over the seed and the rank.
            let mutable z = uint64 seed + uint64 comm.Rank * 0x9E3779B97F4A7C15UL
            z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
            z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
            int64 (z ^^^ (z >>> 31))

    // ---------------------------------------------------------------------------------
    // Splitting batches

    /// This rank's share of a batch of <paramref name="count"/> rows: contiguous rows, shares
    /// that differ by at most one row, and the loss weight that makes unequal shares exact
    /// (see BatchShare). Every rank needs at least one row.
    [<CompiledName("Share")>]
    let share (comm: Communicator) (count: int64) : BatchShare =
        if isNull comm then raise (ArgumentNullException("comm"))
        let size = int64 comm.Size
        if count < size then
            raise (ArgumentOutOfRangeException("count", count, sprintf "%O: a batch of %d rows cannot give each of %d ranks a share; use batches of at least %d rows (best a multiple of %d)." comm count size size size))
        let rank = int64 comm.Rank
        let start = rank * count / size
        let length = (rank + 1L) * count / size - start
        { Start = start; Length = length; Weight = float (length * size) / float count }

    /// This rank's share of a batch: the rows <c>share</c> gives it, as a view (no copy).
    [<CompiledName("Shard")>]
    let shard (comm: Communicator) (batch: torch.Tensor) : torch.Tensor =
        if isNull batch then raise (ArgumentNullException("batch"))
        if batch.Dimensions = 0L then raise (ArgumentException("A scalar cannot be split across ranks; pass a batch whose first dimension holds the examples.", "batch"))
        let s = share comm (batch.size 0)
        batch.narrow(0L, s.Start, s.Length)

    /// The sum of a number over all ranks (an all-reduce of one float64), for metrics such as
    /// a count of correct predictions on each rank's share.
    [<CompiledName("Sum")>]
    let sum (comm: Communicator) (value: float) : float =
        if isNull comm then raise (ArgumentNullException("comm"))
        use _ = torch.no_grad ()
        use t = torch.tensor [| value |]
        comm.AllReduceSum t
        t.ToDouble()

    // ---------------------------------------------------------------------------------
    // Averaging gradients

    /// Sums, across ranks, one flat buffer per dtype that holds every tensor (and the extra
    /// scalar, if any, in the buffer of its dtype), divides by the number of ranks, and returns
    /// the tensors as views of the buffers, plus the averaged scalar. Half-precision tensors are
    /// summed in float32.
    let internal averageWith (comm: Communicator) (grads: State) (scalar: torch.Tensor option) : State * torch.Tensor option =
        if comm.Size = 1 then grads, scalar
        else
            use _ = torch.no_grad ()
            let entries = State.toMap grads |> Seq.map (fun kv -> kv.Key, kv.Value) |> Array.ofSeq
            let sumType (d: torch.ScalarType) =
                match d with
                | torch.ScalarType.Float16 | torch.ScalarType.BFloat16 -> torch.float32
                | d -> d
            let divisor = (float comm.Size).ToScalar()
            let averaged = Dictionary<string, torch.Tensor>()
            let mutable averagedScalar = None
            let scalarType = scalar |> Option.map (fun s -> sumType s.dtype)
            let groups = entries |> Array.groupBy (fun (_, t) -> sumType t.dtype)
            let groups =
                match scalarType with
                | Some d when not (groups |> Array.exists (fun (g, _) -> g = d)) -> Array.append groups [| d, [||] |]
                | _ -> groups
            for dtype, group in groups do
                let withScalar = scalarType = Some dtype
                let parts =
                    [|
                        for _, t in group -> (if t.dtype = dtype then t else t.to_type dtype).reshape(-1L)
                        if withScalar then yield scalar.Value.detach().to_type(dtype).reshape(-1L)
                    |]
                let buffer = if parts.Length = 1 then parts.[0].clone () else torch.cat (parts, 0L)
                comm.AllReduceSum buffer
                buffer.div_ divisor |> ignore
                let sizes = parts |> Array.map (fun p -> p.numel ())
                let views = buffer.split(sizes, 0L)
                group
                |> Array.iteri (fun i (k, t) ->
                    let v = views.[i].view(t.shape)
                    averaged.[k] <- if v.dtype = t.dtype then v else v.to_type t.dtype)
                if withScalar then
                    let s = scalar.Value
                    averagedScalar <- Some(views.[views.Length - 1].reshape(s.shape).to_type s.dtype)
            State.ofValidPairs [| for k, _ in entries -> k, averaged.[k] |], averagedScalar

    /// Gradients averaged across ranks: every rank passes its own (same keys, shapes and dtypes
    /// on every rank) and gets the mean of all ranks' back, bit-identical on every rank. One
    /// all-reduce over one flat buffer per dtype. The data-parallel Optimizer calls this; call it
    /// yourself when you apply gradients another way.
    [<CompiledName("AverageGradients")>]
    let averageGradients (comm: Communicator) (grads: State) : State =
        if isNull comm then raise (ArgumentNullException("comm"))
        if isNull grads then raise (ArgumentNullException("grads"))
        fst (averageWith comm grads None)
