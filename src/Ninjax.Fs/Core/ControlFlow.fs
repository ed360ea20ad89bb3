namespace Ninjax

open System
open System.Collections.Generic
open TorchSharp

/// How scan loops (ninjax's scan options).
type ScanOptions =
    {
        /// The axis of xs to loop over; the step outputs are stacked along it.
        Axis: int
        /// Loop from the last step to the first; the outputs keep the order of xs.
        Reverse: bool
    }

/// Building scan options.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module ScanOptions =

    /// Over the first axis, first to last.
    let defaults = { Axis = 0; Reverse = false }

    /// Loops over another axis.
    let alongAxis (axis: int) (options: ScanOptions) = { options with Axis = axis }

    /// Loops from the last step to the first.
    let reversed (options: ScanOptions) = { options with Reverse = true }

/// Control flow over programs: branches, loops over a tensor's slices, and while loops, each
/// threading the state and giving its parts their own randomness.
module internal ControlFlow =

    /// Runs a program with its own seed and draw counter, so the randomness it sees does not
    /// depend on what ran before it; the caller's counter is left as it was.
    let reseed (seed: uint64) (Nj m: Nj<'T>) : Nj<'T> =
        Nj(fun env world ->
            let struct (value, after) = m { env with Seed = Some(int64 seed) } { world with Draws = 0L }
            struct (value, { after with Draws = world.Draws }))

    /// A sub-seed for one branch or step when the call has a seed; identity otherwise.
    let private subSeeded: Nj<Nj<'T> -> Nj<'T>> =
        Nj(fun env world ->
            match env.Seed with
            | None -> struct (id, world)
            | Some _ ->
                let struct (s, w1) = Monad.runIn env world Monad.rngSeed
                struct (reseed s, w1))

    /// Runs one of two programs. While creating, both run first with ignore on, so the state
    /// holds both branches' entries whichever branch later calls take (ninjax's cond); only the
    /// chosen branch's writes apply. Each branch has its own randomness.
    let cond (pred: bool) (onTrue: Nj<'T>) (onFalse: Nj<'T>) : Nj<'T> =
        Nj(fun env world ->
            let struct (seedTrue, w1) = Monad.runIn env world subSeeded
            let struct (seedFalse, w2) = Monad.runIn env w1 subSeeded
            let onTrue, onFalse = seedTrue onTrue, seedFalse onFalse
            let w3 =
                if env.Flags.Create then
                    let discover = { env with Flags = { env.Flags with Ignore = true } }
                    let struct (_, a) = Monad.runIn discover w2 onTrue
                    let struct (_, b) = Monad.runIn discover a onFalse
                    b
                else w2
            Monad.runIn env w3 (if pred then onTrue else onFalse))

    /// The loop of scan: <paramref name="length"/> steps, first to last or last to first; step
    /// i runs with its own seed (drawn in the order of i, so it has the same randomness in either
    /// direction) and its output goes to place i of the stacked outputs.
    let private loop (length: int64) (options: ScanOptions) (step: int64 -> 'C -> Nj<'C * torch.Tensor>) (carry: 'C) : Nj<'C * torch.Tensor> =
        Nj(fun env world ->
            let n = int length
            let seeds = Array.zeroCreate n
            let mutable w = world
            for i in 0 .. n - 1 do
                let struct (seeded, w1) = Monad.runIn env w subSeeded
                seeds.[i] <- seeded
                w <- w1
            let ys = Array.zeroCreate<torch.Tensor> n
            let mutable c = carry
            let mutable first = -1
            for k in 0 .. n - 1 do
                let i = if options.Reverse then n - 1 - k else k
                let struct ((c2, y), w2) = Monad.runIn env w (seeds.[i] (step (int64 i) c))
                if isNull (box y) then raise (InvalidOperationException(sprintf "scan step %d returned a null output." i))
                if first >= 0 && (y.dtype <> ys.[first].dtype || not (Shape.same y ys.[first])) then
                    raise (
                        InvalidOperationException(
                            sprintf "scan step %d returned shape %s dtype %O, but step %d returned shape %s dtype %O; every step must return the same." i (Text.shape y) y.dtype first (Text.shape ys.[first]) ys.[first].dtype
                        )
                    )
                if first < 0 then first <- i
                ys.[i] <- y
                c <- c2
                w <- w2
            struct ((c, torch.stack (ys, int64 options.Axis)), w))

    /// Loops a step over the slices of <paramref name="xs"/> along the options' axis, first to
    /// last or (Reverse) last to first, threading a carry and the state, with fresh randomness per
    /// step; the per-step outputs are stacked along the same axis in the order of xs (ninjax's
    /// scan). Gradients flow through every step.
    let scanWith (options: ScanOptions) (step: 'C -> torch.Tensor -> Nj<'C * torch.Tensor>) (carry: 'C) (xs: torch.Tensor) : Nj<'C * torch.Tensor> =
        Nj(fun env world ->
            if isNull (box xs) then raise (ArgumentNullException("xs", "scan needs a tensor to loop over."))
            let rank = int xs.Dimensions
            if rank = 0 then raise (ArgumentException("scan needs xs with at least one axis; it got a scalar.", "xs"))
            let axis = options.Axis
            if axis < -rank || axis >= rank then
                raise (ArgumentOutOfRangeException("axis", axis, sprintf "scan axis %d is out of range for xs of shape %s." axis (Text.shape xs)))
            let axis = if axis < 0 then axis + rank else axis
            let length = xs.size axis
            if length = 0L then raise (ArgumentException(sprintf "scan over axis %d of shape %s has no steps." axis (Text.shape xs), "xs"))
            Monad.runIn env world (loop length { options with Axis = axis } (fun i c -> step c (xs.select (int64 axis, i))) carry))

    /// scanWith over one axis, first to last.
    let scan (step: 'C -> torch.Tensor -> Nj<'C * torch.Tensor>) (carry: 'C) (xs: torch.Tensor) (axis: int) : Nj<'C * torch.Tensor> =
        scanWith { Axis = axis; Reverse = false } step carry xs

    /// Loops a step <paramref name="length"/> times without xs (ninjax's scan with a length and
    /// no xs): the step gets the carry and the step's index (0 to length - 1, in the order the
    /// options give), and its outputs are stacked along the options' axis in the order of the index.
    let scanLength (options: ScanOptions) (length: int64) (step: 'C -> int64 -> Nj<'C * torch.Tensor>) (carry: 'C) : Nj<'C * torch.Tensor> =
        if length <= 0L then raise (ArgumentOutOfRangeException("length", length, "scan needs at least one step."))
        loop length options (fun i c -> step c i) carry

    /// Repeats a body while a condition holds, threading a carry and the state (JAX's
    /// while_loop). Each iteration has fresh randomness of its own, derived from one seed drawn
    /// for the loop and the iteration's index (ninjax's fold_in), so it depends neither on the
    /// iterations before it nor on whether the call creates entries. While creating, the first
    /// iteration's condition and body run once with ignore on, so the body's entries exist even
    /// if the condition is false from the start.
    let whileLoop (condition: 'C -> Nj<bool>) (body: 'C -> Nj<'C>) (carry: 'C) : Nj<'C> =
        Nj(fun env world ->
            let struct (shared, w0) =
                match env.Seed with
                | None -> struct (ValueNone, world)
                | Some _ ->
                    let struct (s, w) = Monad.runIn env world Monad.rngSeed
                    struct (ValueSome s, w)
            let seededAt (i: int64) (p: Nj<'T>) : Nj<'T> =
                match shared with
                | ValueNone -> p
                | ValueSome s -> reseed (Monad.derive s i) p
            let mutable w =
                if env.Flags.Create then
                    let discover = { env with Flags = { env.Flags with Ignore = true } }
                    let struct (_, a) = Monad.runIn discover w0 (seededAt 0L (Monad.bind (fun _ -> body carry) (condition carry)))
                    a
                else w0
            let iteration (c: 'C) : Nj<'C voption> =
                Monad.bind (fun again -> if again then Monad.map ValueSome (body c) else Monad.ret ValueNone) (condition c)
            let mutable c = carry
            let mutable i = 0L
            let mutable go = true
            while go do
                let struct (next, w1) = Monad.runIn env w (seededAt i (iteration c))
                w <- w1
                match next with
                | ValueSome c2 ->
                    c <- c2
                    i <- i + 1L
                | ValueNone -> go <- false
            struct (c, w))
