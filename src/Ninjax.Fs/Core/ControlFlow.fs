namespace Ninjax

open System
open System.Collections.Generic
open TorchSharp

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

    /// Loops a step over the slices of <paramref name="xs"/> along <paramref name="axis"/>,
    /// threading a carry and the state, with fresh randomness per step; the per-step outputs
    /// are stacked along the same axis (ninjax's scan). Gradients flow through every step.
    let scan (step: 'C -> torch.Tensor -> Nj<'C * torch.Tensor>) (carry: 'C) (xs: torch.Tensor) (axis: int) : Nj<'C * torch.Tensor> =
        Nj(fun env world ->
            if isNull (box xs) then raise (ArgumentNullException("xs", "scan needs a tensor to loop over."))
            let rank = int xs.Dimensions
            if rank = 0 then raise (ArgumentException("scan needs xs with at least one axis; it got a scalar.", "xs"))
            if axis < -rank || axis >= rank then
                raise (ArgumentOutOfRangeException("axis", axis, sprintf "scan axis %d is out of range for xs of shape %s." axis (Text.shape xs)))
            let axis = if axis < 0 then axis + rank else axis
            let length = xs.shape.[axis]
            if length = 0L then raise (ArgumentException(sprintf "scan over axis %d of shape %s has no steps." axis (Text.shape xs), "xs"))
            let mutable c = carry
            let mutable w = world
            let ys = ResizeArray<torch.Tensor>()
            for i in 0L .. length - 1L do
                let struct (seeded, w1) = Monad.runIn env w subSeeded
                let struct ((c2, y), w2) = Monad.runIn env w1 (seeded (step c (xs.select (int64 axis, i))))
                if isNull (box y) then raise (InvalidOperationException(sprintf "scan step %d returned a null output." i))
                if ys.Count > 0 && (y.shape <> ys.[0].shape || y.dtype <> ys.[0].dtype) then
                    raise (
                        InvalidOperationException(
                            sprintf "scan step %d returned shape %s dtype %O, but step 0 returned shape %s dtype %O; every step must return the same." i (Text.shape y) y.dtype (Text.shape ys.[0]) ys.[0].dtype
                        )
                    )
                ys.Add y
                c <- c2
                w <- w2
            struct ((c, torch.stack (ys, int64 axis)), w))

    /// Repeats a body while a condition holds, threading a carry and the state (JAX's
    /// while_loop). While creating, the body first runs once with ignore on, so its entries
    /// exist even if the condition is false from the start.
    let whileLoop (condition: 'C -> Nj<bool>) (body: 'C -> Nj<'C>) (carry: 'C) : Nj<'C> =
        Nj(fun env world ->
            let mutable w =
                if env.Flags.Create then
                    let discover = { env with Flags = { env.Flags with Ignore = true } }
                    let struct (_, a) = Monad.runIn discover world (condition carry)
                    let struct (_, b) = Monad.runIn discover a (body carry)
                    b
                else world
            let mutable c = carry
            let mutable go = true
            while go do
                let struct (again, w1) = Monad.runIn env w (condition c)
                w <- w1
                if again then
                    let struct (c2, w2) = Monad.runIn env w (body c)
                    c <- c2
                    w <- w2
                else go <- false
            struct (c, w))
