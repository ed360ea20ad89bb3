namespace Ninjax

open System
open System.Collections.Generic
open System.Text.RegularExpressions
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
        /// How many gradients enclose this point; above zero, gradients keep their graph.
        GradDepth: int
        /// Generators handed out by rng, released when the purified call returns.
        Disposables: ResizeArray<IDisposable>
        /// The donated state's bookkeeping when the call runs with Options.donate; null otherwise.
        Donation: Donation
    }

/// What a program threads from step to step: the state and the bookkeeping about it.
type World =
    {
        /// The state as it is now.
        State: State
        /// How many random generators have been drawn so far.
        Draws: int64
        /// Keys read so far.
        Read: Set<string>
        /// Keys written that already existed (even if the write was ignored).
        Modified: Set<string>
        /// Keys created.
        Created: Set<string>
    }

/// A program over the state: given the environment and the world, it returns a value and the
/// next world. Running such a program is the definition of what every other API in Ninjax does.
[<Struct>]
type Nj<'T> = Nj of (Env -> World -> struct ('T * World))

/// Something that owns the keys at and under a path: a module.
[<AllowNullLiteral>]
type IScoped =
    /// The path of the owner, such as <c>model/h1</c>.
    abstract Path: string

/// What to differentiate with respect to.
[<RequireQualifiedAccess>]
type Target =
    /// A key and every key under it, as in ninjax (<c>model/h1</c> selects <c>model/h1/w</c> and <c>model/h1/b</c>).
    | Key of string
    /// Every key the regex matches (anchor it with <c>^...$</c> to match whole keys).
    | Pattern of Regex
    /// Every key of a module.
    | Module of IScoped

    /// A readable description for error messages.
    override this.ToString() =
        match this with
        | Key k -> sprintf "key '%s'" k
        | Pattern r -> sprintf "pattern /%O/" r
        | Module m -> sprintf "module '%s'" m.Path

/// The outcome of differentiating a program.
type Gradient<'Aux> =
    {
        /// The value of the loss (detached unless a gradient encloses this one).
        Loss: torch.Tensor
        /// The state entries differentiated with respect to, as they were.
        Params: State
        /// The gradients, keyed like Params.
        Grads: State
        /// The gradients with respect to the explicit tensor inputs, in order.
        InputGrads: torch.Tensor list
        /// What the function returned beside the loss.
        Aux: 'Aux
    }

/// The errors every operation raises, in one place so their wording stays consistent.
module internal Errors =

    let flagText (f: Flags) = sprintf "create=%b, modify=%b, ignore=%b" f.Create f.Modify f.Ignore

    let missing (env: Env) (world: World) (key: string) : exn =
        let near = State.nearby key world.State
        let nearText =
            if near.IsEmpty then "the state is empty"
            else "nearby existing keys: " + String.Join(", ", near)
        KeyNotFoundException(
            sprintf
                "State key '%s' does not exist (%s) in %s with %s. Give a constructor to create it, and run with create=true or through Nj.init."
                key nearText env.Name (flagText env.Flags)
        )
        :> exn

    let cannotCreate (env: Env) (key: string) (value: torch.Tensor) : exn =
        InvalidOperationException(
            sprintf
                "Cannot create state key '%s' (shape %A, dtype %O) in %s: creating is off (%s). Run Nj.init first or pass create=true."
                key value.shape value.dtype env.Name (flagText env.Flags)
        )
        :> exn

    let cannotModify (env: Env) (key: string) (old: torch.Tensor) (value: torch.Tensor) : exn =
        InvalidOperationException(
            sprintf
                "Cannot modify state key '%s' in %s: modify=false (%s). You were changing it from shape %A dtype %O to shape %A dtype %O."
                key env.Name (flagText env.Flags) old.shape old.dtype value.shape value.dtype
        )
        :> exn

    let mismatch (key: string) (old: torch.Tensor) (value: torch.Tensor) : exn =
        ArgumentException(
            sprintf
                "Cannot write state key '%s': it holds shape %A dtype %O, the new value has shape %A dtype %O. Writes must keep shape and dtype."
                key old.shape old.dtype value.shape value.dtype
        )
        :> exn

    let noSeed (env: Env) : exn =
        InvalidOperationException(
            sprintf "%s asked for randomness but no seed was given: pass a seed to the purified call (for example Nj.purifyWith (Options.seeded 0L) f, or Nj.init 0L f)." env.Name
        )
        :> exn

/// The operations of the state monad. Everything Ninjax does is defined here: get, put, scopes,
/// randomness and gradients; purification (Purify) only runs these programs.
[<RequireQualifiedAccess>]
module Prog =

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

    /// The environment.
    let env: Nj<Env> = Nj(fun e w -> struct (e, w))

    /// The whole state as it is now (ninjax's nj.state()).
    let state: Nj<State> = Nj(fun _ w -> struct (w.State, w))

    /// True while the program may create entries (ninjax's nj.creating()).
    let creating: Nj<bool> = Nj(fun e w -> struct (e.Flags.Create, w))

    /// The current scope path.
    let path: Nj<string> = Nj(fun e w -> struct (e.Scope, w))

    /// Reads the entry under an absolute key, creating it from the constructor on first use.
    let getKey (key: string) (ctor: Nj<torch.Tensor> option) : Nj<torch.Tensor> =
        Nj(fun env world ->
            match world.State.Entries.TryFind key with
            | Some value -> struct (value, { world with Read = world.Read.Add key })
            | None ->
                match ctor with
                | None -> raise (Errors.missing env world key)
                | Some (Nj make) ->
                    Key.validate key
                    let struct (value, w1) = make env world
                    if isNull (box value) then
                        raise (InvalidOperationException(sprintf "The constructor for state key '%s' returned null." key))
                    if not env.Flags.Create then raise (Errors.cannotCreate env key value)
                    // The constructor may itself have created the key (a nested get); keep the first.
                    match w1.State.Entries.TryFind key with
                    | Some existing -> struct (existing, { w1 with Read = w1.Read.Add key })
                    | None ->
                        struct (value,
                                { w1 with
                                    State = State(w1.State.Entries.Add(key, value))
                                    Created = w1.Created.Add key
                                    Read = w1.Read.Add key }))

    /// Reads entries under absolute keys that are known to be well formed, creating a missing one
    /// from <paramref name="make"/> (given its index) as getKey does: the optimizer's many entries
    /// in one step of the interpreter.
    let getMany (keys: string[]) (make: int -> torch.Tensor) : Nj<torch.Tensor[]> =
        Nj(fun env world ->
            let values = Array.zeroCreate keys.Length
            let mutable w = world
            for i in 0 .. keys.Length - 1 do
                let struct (v, w1) = runIn env w (getKey keys.[i] (Some(Nj(fun _ w -> struct (make i, w)))))
                values.[i] <- v
                w <- w1
            struct (values, w))

    /// Writes the entry under an absolute key, subject to the flags.
    let putKey (key: string) (value: torch.Tensor) : Nj<torch.Tensor> =
        Nj(fun env world ->
            if isNull (box value) then
                raise (ArgumentNullException("value", sprintf "Cannot write null to state key '%s'." key))
            match world.State.Entries.TryFind key with
            | Some old ->
                let world = { world with Modified = world.Modified.Add key }
                if env.Flags.Ignore then struct (value, world)
                elif not env.Flags.Modify then raise (Errors.cannotModify env key old value)
                // Writing back the tensor the entry already holds (an update made in place) leaves the
                // state as it is: no path copy of the map.
                elif obj.ReferenceEquals(old, value) then struct (value, world)
                elif old.dtype <> value.dtype || not (Shape.same old value) then raise (Errors.mismatch key old value)
                else struct (value, { world with State = State(world.State.Entries.Add(key, value)) })
            | None ->
                Key.validate key
                if not env.Flags.Create then raise (Errors.cannotCreate env key value)
                struct (value,
                        { world with
                            State = State(world.State.Entries.Add(key, value))
                            Created = world.Created.Add key }))

    /// Reads an entry relative to the current scope, creating it on first use.
    let get (name: string) (ctor: Nj<torch.Tensor>) : Nj<torch.Tensor> =
        Nj(fun env world -> runIn env world (getKey (Key.join env.Scope name) (Some ctor)))

    /// Reads an existing entry relative to the current scope.
    let read (name: string) : Nj<torch.Tensor> =
        Nj(fun env world -> runIn env world (getKey (Key.join env.Scope name) None))

    /// Writes an entry relative to the current scope.
    let put (name: string) (value: torch.Tensor) : Nj<torch.Tensor> =
        Nj(fun env world -> runIn env world (putKey (Key.join env.Scope name) value))

    /// Writes many entries under absolute keys, in key order.
    let putMany (entries: seq<string * torch.Tensor>) : Nj<unit> =
        Nj(fun env world ->
            let mutable w = world
            for k, v in entries do
                let struct (_, w1) = runIn env w (putKey k v)
                w <- w1
            struct ((), w))

    /// The entries of the current scope (absolute keys) whose key relative to the scope the
    /// filter matches; every returned key counts as read.
    let getm (filter: Regex option) : Nj<State> =
        Nj(fun env world ->
            let prefix = if env.Scope = "" then "" else env.Scope + "/"
            let mutable found = Map.empty
            let mutable read = world.Read
            for kv in world.State.Entries do
                let k = kv.Key
                if k.StartsWith(prefix, StringComparison.Ordinal) then
                    let rel = k.Substring prefix.Length
                    match filter with
                    | Some r when not (r.IsMatch rel) -> ()
                    | _ ->
                        found <- found.Add(k, kv.Value)
                        read <- read.Add k
            struct (State found, { world with Read = read }))

    /// Writes entries under absolute keys that must lie in the current scope.
    let putm (entries: State) : Nj<unit> =
        Nj(fun env world ->
            let prefix = if env.Scope = "" then "" else env.Scope + "/"
            for kv in entries.Entries do
                if not (kv.Key.StartsWith(prefix, StringComparison.Ordinal)) then
                    raise (
                        ArgumentException(
                            sprintf "Key '%s' does not belong to scope '%s': putm only writes keys under '%s'." kv.Key env.Scope prefix,
                            "entries"
                        )
                    )
            runIn env world (putMany (entries.Entries |> Seq.map (fun kv -> kv.Key, kv.Value))))

    /// Runs a program one scope deeper: relative names resolve under <paramref name="name"/>.
    let scope (name: string) (Nj m: Nj<'T>) : Nj<'T> =
        Key.validate name
        Nj(fun env world -> m { env with Scope = Key.join env.Scope name } world)

    /// Runs a program in an absolute scope (a module's path).
    let scopeAt (path: string) (Nj m: Nj<'T>) : Nj<'T> =
        Nj(fun env world -> m { env with Scope = path } world)

    /// Runs a program with changed flags.
    let withFlags (flags: Flags) (Nj m: Nj<'T>) : Nj<'T> =
        Nj(fun env world -> m { env with Flags = flags } world)

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

    // ---------------------------------------------------------------------------------------
    // Gradients

    /// The keys a target selects in a state; an error naming the target when it selects none.
    let internal resolveTarget (state: State) (target: Target) : string list =
        let keys =
            match target with
            | Target.Key k -> state.Entries |> Seq.map (fun kv -> kv.Key) |> Seq.filter (Key.isUnder k) |> List.ofSeq
            | Target.Module m ->
                // A module's keys lie strictly below its path; the key equal to the path belongs to its parent.
                let prefix = m.Path + "/"
                state.Entries |> Seq.map (fun kv -> kv.Key) |> Seq.filter (fun k -> k.StartsWith(prefix, StringComparison.Ordinal)) |> List.ofSeq
            | Target.Pattern r -> state.Entries |> Seq.map (fun kv -> kv.Key) |> Seq.filter r.IsMatch |> List.ofSeq
        if keys.IsEmpty then
            let probe =
                match target with
                | Target.Key k -> k
                | Target.Module m -> m.Path
                | Target.Pattern r -> string r
            let near = State.nearby probe state
            raise (
                KeyNotFoundException(
                    sprintf
                        "Gradient target %O matches no state key (nearby existing keys: %s)."
                        target (if near.IsEmpty then "none, the state is empty" else String.Join(", ", near))
                )
            )
        keys

    /// Differentiates a program's scalar loss with respect to state entries and explicit tensor
    /// inputs. When the program may create entries, it first runs once with ignore on so that
    /// entries it creates exist (ninjax's prerun). Writes the program makes are kept (a counter
    /// incremented inside the loss counts once per call) and detached from the graph unless a
    /// gradient encloses this one, in which case everything keeps its graph (grad of grad).
    let gradFull (f: torch.Tensor list -> Nj<torch.Tensor * 'Aux>) (targets: Target list) (inputs: torch.Tensor list) : Nj<Gradient<'Aux>> =
        Nj(fun env world ->
            if targets.IsEmpty && inputs.IsEmpty then
                raise (ArgumentException("Nothing to differentiate: give at least one target or input.", "targets"))
            use _grad = torch.enable_grad true
            let nested = env.GradDepth > 0
            let world =
                if env.Flags.Create then
                    let struct (_, w) = runIn { env with Flags = { env.Flags with Ignore = true } } world (f inputs)
                    w
                else world
            let keys = targets |> List.collect (resolveTarget world.State) |> List.distinct
            for k in keys do
                let t = world.State.Entries.[k]
                if not (torch.is_floating_point t || torch.is_complex t) then
                    raise (
                        ArgumentException(
                            sprintf "Cannot differentiate with respect to state key '%s': its dtype %O is not floating point. Narrow the gradient targets to exclude it." k t.dtype,
                            "targets"
                        )
                    )
            let leafOf (t: torch.Tensor) = if nested && t.requires_grad then t else t.detach().requires_grad_(true)
            let paramLeaves = keys |> List.map (fun k -> k, leafOf world.State.Entries.[k])
            let inputLeaves = inputs |> List.map leafOf
            let leafState = paramLeaves |> List.fold (fun (m: Map<_, _>) (k, t) -> m.Add(k, t)) world.State.Entries
            let inner = { env with Flags = { env.Flags with Create = false }; GradDepth = env.GradDepth + 1 }
            let start = { world with State = State leafState; Read = Set.empty; Modified = Set.empty }
            let struct ((loss, aux), after) = runIn inner start (f inputLeaves)
            for k in keys do
                if not (after.Read.Contains k) then
                    raise (
                        InvalidOperationException(
                            sprintf
                                "Gradient with respect to state key '%s' was asked for, but the differentiated function never reads it. Keys it reads: %s."
                                k (if after.Read.IsEmpty then "none" else String.Join(", ", after.Read))
                        )
                    )
            if isNull (box loss) then raise (InvalidOperationException "The differentiated function returned a null loss.")
            if loss.numel () <> 1L then
                raise (
                    ArgumentException(
                        sprintf "The differentiated function must return a scalar loss; it returned shape %A (%d elements)." loss.shape (loss.numel ())
                    )
                )
            if not loss.requires_grad then
                raise (
                    InvalidOperationException(
                        "The loss does not depend on any differentiated entry or input through operations autograd can follow (was it computed under no_grad or from detached values?)."
                    )
                )
            let leaves = (paramLeaves |> List.map snd) @ inputLeaves
            let grads =
                torch.autograd.grad(
                    [| loss |], List.toArray leaves, null, retain_graph = nested, create_graph = nested, allow_unused = true
                )
            let gradAt i (leaf: torch.Tensor) =
                let g = grads.[i]
                if isNull (box g) || g.IsInvalid then torch.zeros_like leaf else g
            let paramGrads = paramLeaves |> List.mapi (fun i (k, leaf) -> k, gradAt i leaf)
            let inputGrads = inputLeaves |> List.mapi (fun i leaf -> gradAt (paramLeaves.Length + i) leaf)
            // Entries the function did not overwrite still hold their leaves: restore the originals.
            let mutable final = after.State.Entries
            for k, leaf in paramLeaves do
                if obj.ReferenceEquals(final.[k], leaf) then final <- final.Add(k, world.State.Entries.[k])
            if not nested then
                for k in after.Modified do
                    let v = final.[k]
                    if v.requires_grad then final <- final.Add(k, v.detach())
            let outWorld =
                { after with
                    State = State final
                    Read = Set.union world.Read after.Read
                    Modified = Set.union world.Modified after.Modified
                    Created = Set.union world.Created after.Created }
            let result =
                {
                    Loss = (if nested then loss else loss.detach())
                    Params = State(keys |> List.fold (fun (m: Map<_, _>) k -> m.Add(k, world.State.Entries.[k])) Map.empty)
                    Grads = State(Map.ofList paramGrads)
                    InputGrads = inputGrads
                    Aux = aux
                }
            struct (result, outWorld))

    /// Differentiates a scalar loss with respect to state entries: (loss, params, grads).
    let grad (loss: Nj<torch.Tensor>) (targets: Target list) : Nj<torch.Tensor * State * State> =
        gradFull (fun _ -> map (fun l -> l, ()) loss) targets []
        |> map (fun g -> g.Loss, g.Params, g.Grads)

    /// Like grad, for a program that returns an auxiliary value beside the loss.
    let gradAux (lossAux: Nj<torch.Tensor * 'Aux>) (targets: Target list) : Nj<torch.Tensor * State * State * 'Aux> =
        gradFull (fun _ -> lossAux) targets []
        |> map (fun g -> g.Loss, g.Params, g.Grads, g.Aux)

    // ---------------------------------------------------------------------------------------
    // Control flow

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
                let struct (s, w1) = runIn env world rngSeed
                struct (reseed s, w1))

    /// Runs one of two programs. While creating, both run first with ignore on, so the state
    /// holds both branches' entries whichever branch later calls take (ninjax's cond); only the
    /// chosen branch's writes apply. Each branch has its own randomness.
    let cond (pred: bool) (onTrue: Nj<'T>) (onFalse: Nj<'T>) : Nj<'T> =
        Nj(fun env world ->
            let struct (seedTrue, w1) = runIn env world subSeeded
            let struct (seedFalse, w2) = runIn env w1 subSeeded
            let onTrue, onFalse = seedTrue onTrue, seedFalse onFalse
            let w3 =
                if env.Flags.Create then
                    let discover = { env with Flags = { env.Flags with Ignore = true } }
                    let struct (_, a) = runIn discover w2 onTrue
                    let struct (_, b) = runIn discover a onFalse
                    b
                else w2
            runIn env w3 (if pred then onTrue else onFalse))

    /// Loops a step over the slices of <paramref name="xs"/> along <paramref name="axis"/>,
    /// threading a carry and the state, with fresh randomness per step; the per-step outputs
    /// are stacked along the same axis (ninjax's scan). Gradients flow through every step.
    let scan (step: 'C -> torch.Tensor -> Nj<'C * torch.Tensor>) (carry: 'C) (xs: torch.Tensor) (axis: int) : Nj<'C * torch.Tensor> =
        Nj(fun env world ->
            if isNull (box xs) then raise (ArgumentNullException("xs", "scan needs a tensor to loop over."))
            let rank = int xs.Dimensions
            if rank = 0 then raise (ArgumentException("scan needs xs with at least one axis; it got a scalar.", "xs"))
            if axis < -rank || axis >= rank then
                raise (ArgumentOutOfRangeException("axis", axis, sprintf "scan axis %d is out of range for xs of shape %A." axis xs.shape))
            let axis = if axis < 0 then axis + rank else axis
            let length = xs.shape.[axis]
            if length = 0L then raise (ArgumentException(sprintf "scan over axis %d of shape %A has no steps." axis xs.shape, "xs"))
            let mutable c = carry
            let mutable w = world
            let ys = ResizeArray<torch.Tensor>()
            for i in 0L .. length - 1L do
                let struct (seeded, w1) = runIn env w subSeeded
                let struct ((c2, y), w2) = runIn env w1 (seeded (step c (xs.select (int64 axis, i))))
                if isNull (box y) then raise (InvalidOperationException(sprintf "scan step %d returned a null output." i))
                if ys.Count > 0 && (y.shape <> ys.[0].shape || y.dtype <> ys.[0].dtype) then
                    raise (
                        InvalidOperationException(
                            sprintf "scan step %d returned shape %A dtype %O, but step 0 returned shape %A dtype %O; every step must return the same." i y.shape y.dtype ys.[0].shape ys.[0].dtype
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
                    let struct (_, a) = runIn discover world (condition carry)
                    let struct (_, b) = runIn discover a (body carry)
                    b
                else world
            let mutable c = carry
            let mutable go = true
            while go do
                let struct (again, w1) = runIn env w (condition c)
                w <- w1
                if again then
                    let struct (c2, w2) = runIn env w (body c)
                    c <- c2
                    w <- w2
                else go <- false
            struct (c, w))

    // ---------------------------------------------------------------------------------------
    // Gradient checkpointing

    /// The autograd node of a checkpointed program: its forward output was computed without
    /// keeping activations, and its backward pass recomputes them.
    type private Recompute() =
        inherit torch.autograd.MultiTensorFunction<Recompute>()
        override _.Name = "NinjaxCheckpoint"
        override _.forward(ctx, args) =
            // args: the recompute closure, the precomputed output, then the differentiable inputs.
            ctx.save_data("recompute", args.[0])
            let inputs = args |> Array.skip 2 |> Array.map (fun o -> o :?> torch.Tensor)
            ctx.save_for_backward(List<torch.Tensor>(inputs))
            List<torch.Tensor>([ (args.[1] :?> torch.Tensor).detach () ])
        override _.backward(ctx, outputGrads) =
            let recompute = ctx.get_data "recompute" :?> (torch.Tensor[] -> torch.Tensor)
            let saved = ctx.get_saved_variables () |> Array.ofSeq
            use _grad = torch.enable_grad true
            let leaves = saved |> Array.map (fun t -> t.detach().requires_grad_(true))
            let output = recompute leaves
            let grads = torch.autograd.grad([| output |], leaves, [| outputGrads.[0] |], allow_unused = true)
            let result = List<torch.Tensor>()
            result.Add null // the closure
            result.Add null // the precomputed output
            for i in 0 .. leaves.Length - 1 do
                result.Add(if isNull (box grads.[i]) || grads.[i].IsInvalid then torch.zeros_like leaves.[i] else grads.[i])
            result

    /// Runs a program that maps tensors to a tensor without keeping its activations for the
    /// backward pass: gradients recompute them (ninjax's checkpoint), trading compute for memory.
    /// Gradients reach the explicit inputs and every state entry the program reads. Results,
    /// randomness included, are those of running the program directly; writes apply once.
    let checkpoint (f: torch.Tensor list -> Nj<torch.Tensor>) (inputs: torch.Tensor list) : Nj<torch.Tensor> =
        Nj(fun env world ->
            // The recomputation starts from the same world, so it sees the same randomness.
            let program = f
            let start = { world with Read = Set.empty; Modified = Set.empty; Created = Set.empty }
            let struct (output, after) =
                use _noGrad = torch.no_grad ()
                runIn env start (program inputs)
            if isNull (box output) then raise (InvalidOperationException "A checkpointed program returned a null output.")
            let readKeys =
                after.Read |> Seq.filter (fun k -> world.State.Entries.ContainsKey k && world.State.Entries.[k].requires_grad) |> Array.ofSeq
            let differentiable = Array.append (Array.ofList inputs) (readKeys |> Array.map (fun k -> world.State.Entries.[k]))
            let merged =
                { after with
                    Read = Set.union world.Read after.Read
                    Modified = Set.union world.Modified after.Modified
                    Created = Set.union world.Created after.Created }
            if not (torch.is_grad_enabled ()) || not (differentiable |> Array.exists (fun t -> t.requires_grad)) then
                struct (output, merged)
            else
                let recompute (leaves: torch.Tensor[]) : torch.Tensor =
                    let xs = leaves |> Array.take inputs.Length |> List.ofArray
                    let mutable entries = world.State.Entries
                    readKeys |> Array.iteri (fun i k -> entries <- entries.Add(k, leaves.[inputs.Length + i]))
                    let struct (out, _) = runIn env { start with State = State entries } (program xs)
                    out
                let args = Array.append [| box recompute; box output |] (differentiable |> Array.map box)
                struct ((Recompute.apply args).[0], merged))

/// The computation expression for programs over the state: <c>nj { let! w = Prog.get "w" init in ... }</c>.
type NjBuilder() =
    /// Returns a value.
    member _.Return(x: 'T) = Prog.ret x
    /// Returns another program's result.
    member _.ReturnFrom(m: Nj<'T>) = m
    /// Sequences programs.
    member _.Bind(m: Nj<'T>, f: 'T -> Nj<'U>) = Prog.bind f m
    /// The empty program.
    member _.Zero() = Prog.ret ()
    /// Defers a program until it runs.
    member _.Delay(f: unit -> Nj<'T>) = Prog.delay f
    /// Runs one program, then another.
    member _.Combine(a: Nj<unit>, b: Nj<'T>) = Prog.bind (fun () -> b) a
    /// Runs a program for each element.
    member this.For(xs: seq<'T>, body: 'T -> Nj<unit>) : Nj<unit> =
        Nj(fun env world ->
            let mutable w = world
            for x in xs do
                let struct ((), w1) = Prog.runIn env w (body x)
                w <- w1
            struct ((), w))
    /// Runs a program while a condition holds.
    member _.While(cond: unit -> bool, body: Nj<unit>) : Nj<unit> =
        Nj(fun env world ->
            let mutable w = world
            while cond () do
                let struct ((), w1) = Prog.runIn env w body
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
                Prog.runIn env world (handler e))
    /// Disposes a resource after a program.
    member this.Using(resource: 'R :> IDisposable, body: 'R -> Nj<'T>) : Nj<'T> =
        this.TryFinally(body resource, fun () -> if not (isNull (box resource)) then resource.Dispose())

/// The <c>nj { }</c> computation expression.
[<AutoOpen>]
module NjBuilderInstance =
    /// Builds a program over the state.
    let nj = NjBuilder()
