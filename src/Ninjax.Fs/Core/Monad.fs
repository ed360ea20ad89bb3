namespace Ninjax

open System
open System.Collections.Generic
open TorchSharp

/// What a running program may do to the state, as in ninjax's pure(): <c>Create</c> lets it add
/// keys, <c>Modify</c> lets it change existing keys, and <c>Ignore</c> silently drops changes to
/// existing keys (used by init, so a second init never overwrites what the first created).
type Flags =
    {
        /// May add new keys.
        Create: bool
        /// May change existing keys.
        Modify: bool
        /// Changes to existing keys are dropped without error.
        Ignore: bool
    }

/// What one purified call records while it runs, shared by every program of the call: the
/// version of every tensor it read (so that the call can tell whether code changed a tensor of
/// the caller's state in place, which no flag can undo), and the failures of its code inside
/// libtorch's backward pass (Nj.checkpoint's recomputation), which libtorch cannot carry.
[<Sealed; AllowNullLiteral>]
type CallLog internal (parent: CallLog) =
    let reads = ResizeArray<struct (string * torch.Tensor * int64)>()
    let failures: ResizeArray<exn> = if isNull parent then ResizeArray() else parent.BackwardFailures

    /// Records that the call read the tensor under a key, with the tensor's version now.
    member internal _.Read(key: string, tensor: torch.Tensor) : unit =
        let version = Native.version tensor
        if version >= 0L then reads.Add(struct (key, tensor, version))

    /// How many reads the log holds: a mark for ChangedSinceRead.
    member internal _.ReadCount = reads.Count

    /// The keys whose tensor, as read (from the <paramref name="first"/>th read on), was changed
    /// in place since it was read (in read order, each key once), with the tensors.
    member internal _.ChangedSinceRead(first: int) : (string * torch.Tensor) list =
        let seen = HashSet<string>()
        [ for i in first .. reads.Count - 1 do
              let struct (key, tensor, version) = reads.[i]
              if not tensor.IsInvalid && Native.version tensor <> version && seen.Add key then yield key, tensor ]

    /// True when any tensor the call read was changed in place since it was read.
    member internal _.AnyChanged() : bool =
        let mutable changed = false
        let mutable i = 0
        while not changed && i < reads.Count do
            let struct (_, tensor, version) = reads.[i]
            changed <- not tensor.IsInvalid && Native.version tensor <> version
            i <- i + 1
        changed

    /// The keys of <paramref name="input"/> (the caller's state) whose tensors the call changed
    /// in place: a tensor read under the key (the entry's own, or a view or alias of it, such as
    /// a gradient leaf) whose version moved since the read.
    member internal this.ChangedInputs(input: Map<string, torch.Tensor>) : string list =
        if not (this.AnyChanged()) then []
        else
            this.ChangedSinceRead 0
            |> List.filter (fun (key, tensor) ->
                match input.TryFind key with
                | Some original -> not original.IsInvalid && Native.sameMemory original tensor
                | None -> false)
            |> List.map fst

    /// Exceptions raised by the call's code while libtorch ran a backward pass; the gradient
    /// that started the pass raises them. Shared with the enclosing call's log.
    member internal _.BackwardFailures: ResizeArray<exn> = failures

/// What a program reads but never changes while one purified call runs.
type Env =
    {
        /// The scope that relative names are resolved in ("" is the root).
        Scope: string
        /// What the program may do to the state.
        Flags: Flags
        /// The seed that randomness derives from; None when the caller passed none.
        Seed: int64 option
        /// The purified function's name, for error messages.
        Name: string
        /// The language of the code that made the purified call, for error messages.
        Language: Language
        /// How many gradients enclose this point; above zero, gradients keep their graph.
        GradDepth: int
        /// Generators handed out by rng, released when the purified call returns.
        Disposables: ResizeArray<IDisposable>
        /// The donated state's bookkeeping when the call runs with Options.donate; null otherwise.
        Donation: Donation
        /// What the call records about itself (reads and their versions, backward failures).
        Log: CallLog
        /// True in an abstract init (Nj.initShapes): the call runs only to learn which entries it
        /// creates, so gradients are not computed (zeros of the targets' shapes stand in).
        ShapesOnly: bool
    }

/// What a program threads from step to step: the state and the bookkeeping about it.
type World =
    {
        /// The state as it is now.
        State: State
        /// How many random generators have been drawn so far.
        Draws: int64
        /// Keys read so far.
        Read: KeySet
        /// Keys written that already existed (even if the write was ignored).
        Modified: KeySet
        /// The keys of Modified given another tensor than they held: the others were written back
        /// with their own tensor (an update made in place) or had their write ignored, so they
        /// still hold what they held before (a purified call's return skips them).
        Replaced: KeySet
        /// Keys created.
        Created: KeySet
    }

/// A program over the state: given the environment and the world, it returns a value and the
/// next world. Running such a program is the definition of what every other API in Ninjax does.
[<Struct>]
type Nj<'T> = Nj of (Env -> World -> struct ('T * World))

/// The errors every operation raises, in one place so their wording stays consistent. Each names
/// the API in the caller's language (env.Language) and shapes as [32, 128].
module internal Errors =

    let flagText (language: Language) (f: Flags) =
        String.Join(", ", [ Text.flag language "create" f.Create; Text.flag language "modify" f.Modify; Text.flag language "ignore" f.Ignore ])

    let missing (env: Env) (world: World) (key: string) : exn =
        let near = State.nearby key world.State
        let nearText =
            if near.IsEmpty then "the state is empty"
            else "nearby existing keys: " + String.Join(", ", near)
        let lang = env.Language
        KeyNotFoundException(
            sprintf
                "State key '%s' does not exist (%s) in %s with %s. Give a constructor to create it (%s), and run with %s or through %s."
                key nearText env.Name (flagText lang env.Flags)
                (Text.code lang "this.Get(name, fun () -> ...)" "Get(name, () => ...)")
                (Text.code lang "Options.withCreate true" "create: true")
                (Text.code lang "Nj.init" "Nj.Init")
        )
        :> exn

    let cannotCreate (env: Env) (key: string) (value: torch.Tensor) : exn =
        let lang = env.Language
        InvalidOperationException(
            sprintf
                "Cannot create state key '%s' (shape %s, dtype %O) in %s: creating is off (%s). Run %s first or pass %s."
                key (Text.shape value) value.dtype env.Name (flagText lang env.Flags)
                (Text.code lang "Nj.init" "Nj.Init")
                (Text.code lang "Options.withCreate true" "create: true")
        )
        :> exn

    let cannotModify (env: Env) (key: string) (old: torch.Tensor) (value: torch.Tensor) : exn =
        InvalidOperationException(
            sprintf
                "Cannot modify state key '%s' in %s: %s (%s). You were changing it from shape %s dtype %O to shape %s dtype %O."
                key env.Name (Text.flag env.Language "modify" false) (flagText env.Language env.Flags)
                (Text.shape old) old.dtype (Text.shape value) value.dtype
        )
        :> exn

    let mismatch (key: string) (old: torch.Tensor) (value: torch.Tensor) : exn =
        ArgumentException(
            sprintf
                "Cannot write state key '%s': it holds shape %s dtype %O, the new value has shape %s dtype %O. Writes must keep shape and dtype."
                key (Text.shape old) old.dtype (Text.shape value) value.dtype
        )
        :> exn

    let disposed (env: Env) (key: string) : exn =
        ObjectDisposedException(
            "torch.Tensor",
            sprintf
                "State key '%s' holds a disposed tensor in %s: it was freed (Dispose, a dispose scope, a donating call that replaced it, or a purified call whose output did not carry it). Put a live tensor there, or use the state the last call returned."
                key env.Name
        )
        :> exn

    let noSeed (env: Env) : exn =
        InvalidOperationException(
            sprintf "%s asked for randomness but no seed was given: %s." env.Name
                (Text.code env.Language
                    "pass a seed to the purified call (for example Nj.purifyWith (Options.seeded 0L) f, or Nj.init 0L f)"
                    "pass one to the purified function when you call it (for example train(state, x, seed: 0), or Nj.Init(f)(state, x, seed: 0))")
        )
        :> exn

/// The monad's own operations: running a program, sequencing, and the seeds randomness derives
/// from. Prog (the public vocabulary) forwards to these; the files between use them directly.
module internal Monad =

    /// Runs a program in an environment and world.
    let inline runIn (env: Env) (world: World) (Nj f: Nj<'T>) : struct ('T * World) = f env world

    /// A program that returns a value and changes nothing.
    let ret (value: 'T) : Nj<'T> = Nj(fun _ w -> struct (value, w))

    /// Sequences two programs.
    let bind (f: 'T -> Nj<'U>) (Nj m: Nj<'T>) : Nj<'U> =
        Nj(fun e w ->
            let struct (a, w1) = m e w
            let (Nj g) = f a
            g e w1)

    /// Maps the result of a program.
    let map (f: 'T -> 'U) (Nj m: Nj<'T>) : Nj<'U> =
        Nj(fun e w ->
            let struct (a, w1) = m e w
            struct (f a, w1))

    /// Defers building a program until it runs.
    let delay (f: unit -> Nj<'T>) : Nj<'T> =
        Nj(fun e w ->
            let (Nj g) = f ()
            g e w)

    /// SplitMix64's finaliser: a bijective mix of 64 bits.
    let private finalize (x: uint64) : uint64 =
        let mutable z = x
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    /// The generator seed for a draw. The seed is mixed before the counter is added, so seeds
    /// that differ by the SplitMix increment do not share streams.
    let private mix (seed: int64) (draw: int64) : uint64 =
        finalize (finalize (uint64 seed) + uint64 (draw + 1L) * 0x9E3779B97F4A7C15UL)

    /// A seed derived from another and an index (JAX's fold_in): a stream of its own for each
    /// index, such as a loop's iterations.
    let derive (seed: uint64) (index: int64) : uint64 = mix (int64 seed) index

    /// The seed of the next random generator, derived from the call's seed and a counter.
    let rngSeed: Nj<uint64> =
        Nj(fun env world ->
            match env.Seed with
            | None -> raise (Errors.noSeed env)
            | Some seed -> struct (mix seed world.Draws, { world with Draws = world.Draws + 1L }))

    /// A fresh CPU random generator derived from the call's seed and a counter; released when
    /// the purified call returns.
    let rng: Nj<torch.Generator> =
        Nj(fun env world ->
            let struct (s, w1) = runIn env world rngSeed
            let g = new torch.Generator(s, torch.CPU)
            lock env.Disposables (fun () -> env.Disposables.Add g)
            struct (g, w1))


/// The computation expression for programs over the state: <c>nj { let! w = Prog.get "w" init in ... }</c>.
type NjBuilder() =
    /// Returns a value.
    member _.Return(x: 'T) = Monad.ret x
    /// Returns another program's result.
    member _.ReturnFrom(m: Nj<'T>) = m
    /// Sequences programs.
    member _.Bind(m: Nj<'T>, f: 'T -> Nj<'U>) = Monad.bind f m
    /// The empty program.
    member _.Zero() = Monad.ret ()
    /// Defers a program until it runs.
    member _.Delay(f: unit -> Nj<'T>) = Monad.delay f
    /// Runs one program, then another.
    member _.Combine(a: Nj<unit>, b: Nj<'T>) = Monad.bind (fun () -> b) a
    /// Runs a program for each element.
    member this.For(xs: seq<'T>, body: 'T -> Nj<unit>) : Nj<unit> =
        Nj(fun env world ->
            let mutable w = world
            for x in xs do
                let struct ((), w1) = Monad.runIn env w (body x)
                w <- w1
            struct ((), w))
    /// Runs a program while a condition holds.
    member _.While(cond: unit -> bool, body: Nj<unit>) : Nj<unit> =
        Nj(fun env world ->
            let mutable w = world
            while cond () do
                let struct ((), w1) = Monad.runIn env w body
                w <- w1
            struct ((), w))
    /// Runs a finalizer after a program, whether it fails or not.
    member _.TryFinally(Nj m: Nj<'T>, fin: unit -> unit) : Nj<'T> =
        Nj(fun env world ->
            try
                m env world
            finally
                fin ())
    /// Handles an exception raised by a program.
    member _.TryWith(Nj m: Nj<'T>, handler: exn -> Nj<'T>) : Nj<'T> =
        Nj(fun env world ->
            try
                m env world
            with e ->
                Monad.runIn env world (handler e))
    /// Disposes a resource after a program.
    member this.Using(resource: 'R :> IDisposable, body: 'R -> Nj<'T>) : Nj<'T> =
        this.TryFinally(body resource, fun () -> if not (isNull (box resource)) then resource.Dispose())

/// The <c>nj { }</c> computation expression.
[<AutoOpen>]
module NjBuilderInstance =
    /// Builds a program over the state.
    let nj = NjBuilder()
