namespace Ninjax

open System
open System.Text.RegularExpressions
open TorchSharp

/// The operations of the state monad, the vocabulary every program is written in: reading and
/// writing entries, scopes, randomness, gradients, control flow and checkpointing. The state
/// operations are defined here; the others live in the file of their concept (Monad, Gradients,
/// ControlFlow, Recompute) and are listed here so that programs need one name. Purification
/// (Purify) only runs these programs.
[<RequireQualifiedAccess>]
module Prog =

    // ---------------------------------------------------------------------------------------
    // The monad (Monad.fs)

    /// Runs a program in an environment and world.
    let inline runIn (env: Env) (world: World) (program: Nj<'T>) : struct ('T * World) = Monad.runIn env world program

    /// A program that returns a value and changes nothing.
    let ret (value: 'T) : Nj<'T> = Monad.ret value

    /// Sequences two programs.
    let bind (f: 'T -> Nj<'U>) (program: Nj<'T>) : Nj<'U> = Monad.bind f program

    /// Maps the result of a program.
    let map (f: 'T -> 'U) (program: Nj<'T>) : Nj<'U> = Monad.map f program

    /// Defers building a program until it runs.
    let delay (f: unit -> Nj<'T>) : Nj<'T> = Monad.delay f

    // ---------------------------------------------------------------------------------------
    // The state

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
            // TryGetValue: no option allocated per read.
            match world.State.Entries.TryGetValue key with
            | true, value ->
                if value.IsInvalid then raise (Errors.disposed env key)
                if not (isNull env.Log) then env.Log.Read(key, value)
                struct (value, { world with Read = world.Read.Add key })
            | _ ->
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
                    | Some existing ->
                        if not (isNull env.Log) then env.Log.Read(key, existing)
                        struct (existing, { w1 with Read = w1.Read.Add key })
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
            let mutable read = world.Read
            for i in 0 .. keys.Length - 1 do
                match w.State.Entries.TryGetValue keys.[i] with
                | true, v ->
                    values.[i] <- v
                    read <- read.Add keys.[i]
                | _ ->
                    let struct (v, w1) = Monad.runIn env { w with Read = read } (getKey keys.[i] (Some(Nj(fun _ w -> struct (make i, w)))))
                    values.[i] <- v
                    w <- w1
                    read <- w1.Read
            struct (values, { w with Read = read }))

    /// Writes the entry under an absolute key, subject to the flags.
    let putKey (key: string) (value: torch.Tensor) : Nj<torch.Tensor> =
        Nj(fun env world ->
            if isNull (box value) then
                raise (ArgumentNullException("value", sprintf "Cannot write null to state key '%s'." key))
            if value.IsInvalid then
                raise (ArgumentException(sprintf "Cannot write a disposed tensor to state key '%s' in %s: it was freed (Dispose, a dispose scope, or an earlier purified call that created it). Write a live tensor." key env.Name, "value"))
            match world.State.Entries.TryGetValue key with
            | true, old ->
                let world = { world with Modified = world.Modified.Add key }
                if env.Flags.Ignore then struct (value, world)
                elif not env.Flags.Modify then raise (Errors.cannotModify env key old value)
                // Writing back the tensor the entry already holds (an update made in place) leaves the
                // state as it is: no path copy of the map.
                elif obj.ReferenceEquals(old, value) then struct (value, world)
                elif old.dtype <> value.dtype || not (Shape.same old value) then raise (Errors.mismatch key old value)
                else struct (value, { world with State = world.State.Replace(key, value); Replaced = world.Replaced.Add key })
            | _ ->
                Key.validate key
                if not env.Flags.Create then raise (Errors.cannotCreate env key value)
                struct (value,
                        { world with
                            State = State(world.State.Entries.Add(key, value))
                            Created = world.Created.Add key }))

    /// Writes tensors under absolute keys (<c>keys.[i]</c> gets <c>values.[i]</c>), as putKey
    /// writes each: the optimizer's entries in one step of the interpreter. A tensor the entry
    /// already holds (an update made in place) only marks the key modified.
    let internal putArrays (keys: string[]) (values: torch.Tensor[]) : Nj<unit> =
        Nj(fun env world ->
            let canWrite = env.Flags.Modify && not env.Flags.Ignore
            let mutable w = world
            let mutable modified = world.Modified
            for i in 0 .. keys.Length - 1 do
                match w.State.Entries.TryGetValue keys.[i] with
                | true, old when canWrite && obj.ReferenceEquals(old, values.[i]) -> modified <- modified.Add keys.[i]
                | _ ->
                    let struct (_, w1) = Monad.runIn env { w with Modified = modified } (putKey keys.[i] values.[i])
                    w <- w1
                    modified <- w1.Modified
            struct ((), { w with Modified = modified }))

    /// putArrays of tensors that the program read from these keys earlier in the same step and
    /// updated in place (the optimizer's state): when the call may write, the keys are only marked
    /// modified, with no lookup; otherwise putArrays decides (ignored, or an error naming the key).
    let internal markRewritten (keys: string[]) (values: torch.Tensor[]) : Nj<unit> =
        Nj(fun env world ->
            if env.Flags.Modify && not env.Flags.Ignore then
                let mutable modified = world.Modified
                for k in keys do
                    modified <- modified.Add k
                struct ((), { world with Modified = modified })
            else Monad.runIn env world (putArrays keys values))

    /// Writes every entry of a state under its key, as putArrays does.
    let internal putState (entries: State) : Nj<unit> =
        Nj(fun env world ->
            let canWrite = env.Flags.Modify && not env.Flags.Ignore
            let mutable w = world
            let mutable modified = world.Modified
            for KeyValue(key, value) in entries.Entries do
                match w.State.Entries.TryGetValue key with
                | true, old when canWrite && obj.ReferenceEquals(old, value) -> modified <- modified.Add key
                | _ ->
                    let struct (_, w1) = Monad.runIn env { w with Modified = modified } (putKey key value)
                    w <- w1
                    modified <- w1.Modified
            struct ((), { w with Modified = modified }))

    /// Reads an entry relative to the current scope, creating it on first use.
    let get (name: string) (ctor: Nj<torch.Tensor>) : Nj<torch.Tensor> =
        Nj(fun env world -> Monad.runIn env world (getKey (Key.join env.Scope name) (Some ctor)))

    /// Reads an existing entry relative to the current scope.
    let read (name: string) : Nj<torch.Tensor> =
        Nj(fun env world -> Monad.runIn env world (getKey (Key.join env.Scope name) None))

    /// Writes an entry relative to the current scope.
    let put (name: string) (value: torch.Tensor) : Nj<torch.Tensor> =
        Nj(fun env world -> Monad.runIn env world (putKey (Key.join env.Scope name) value))

    /// Writes many entries under absolute keys, in key order.
    let putMany (entries: seq<string * torch.Tensor>) : Nj<unit> =
        Nj(fun env world ->
            let mutable w = world
            for k, v in entries do
                let struct (_, w1) = Monad.runIn env w (putKey k v)
                w <- w1
            struct ((), w))

    /// The entries under a key prefix (found by binary search, O(log n + k), not a pass over the
    /// state) whose key relative to the prefix the filter matches, keyed by keyOf (absolute key,
    /// relative key); every returned key counts as read, as Prog.get's reads do.
    let internal readUnder (prefix: string) (filter: Regex option) (keyOf: string -> string -> string) : Nj<State> =
        Nj(fun env world ->
            let entries = world.State.Entries
            let start = if prefix = "" then "" else prefix + "/"
            let keys: seq<string> = if prefix = "" then world.State.Keys else world.State.KeysUnder prefix
            let mutable found = Map.empty
            let mutable read = world.Read
            for k in keys do
                if k.Length > start.Length then
                    let rel = k.Substring start.Length
                    match filter with
                    | Some r when not (r.IsMatch rel) -> ()
                    | _ ->
                        let v = entries.[k]
                        if not (isNull env.Log) then env.Log.Read(k, v)
                        found <- found.Add(keyOf k rel, v)
                        read <- read.Add k
            struct (State found, { world with Read = read }))

    /// The entries of the current scope (absolute keys) whose key relative to the scope the
    /// filter matches; every returned key counts as read.
    let getm (filter: Regex option) : Nj<State> =
        Nj(fun env world -> Monad.runIn env world (readUnder env.Scope filter (fun key _ -> key)))

    /// Writes entries under absolute keys that must lie in the current scope.
    let putm (entries: State) : Nj<unit> =
        Nj(fun env world ->
            let prefix = if env.Scope = "" then "" else env.Scope + "/"
            for kv in entries.Entries do
                if not (kv.Key.StartsWith(prefix, StringComparison.Ordinal)) then
                    raise (
                        ArgumentException(
                            sprintf "Key '%s' does not belong to scope '%s': %s only writes keys under '%s'." kv.Key env.Scope (Text.code env.Language "putm" "PutM") prefix,
                            "entries"
                        )
                    )
            Monad.runIn env world (putMany (entries.Entries |> Seq.map (fun kv -> kv.Key, kv.Value))))

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

    // ---------------------------------------------------------------------------------------
    // Randomness (Monad.fs)

    /// The seed of the next random generator, derived from the call's seed and a counter.
    let rngSeed: Nj<uint64> = Monad.rngSeed

    /// A fresh CPU random generator derived from the call's seed and a counter; released when
    /// the purified call returns.
    let rng: Nj<torch.Generator> = Monad.rng

    /// Which tensors the running call may overwrite in place: in a donating call outside any
    /// gradient and free to modify, those Donation.MayOverwrite grants (each grant counted);
    /// otherwise none. The fused optimizer steps and mayUpdateInPlace both ask this.
    let internal overwriteGrant (env: Env) : torch.Tensor -> bool =
        let donation = env.Donation
        if isNull donation || env.GradDepth > 0 || not env.Flags.Modify || env.Flags.Ignore then fun _ -> false
        else donation.MayOverwrite

    /// mayUpdateInPlace's answer for one tensor, given the call's grant.
    let private grantInPlace (env: Env) (grant: torch.Tensor -> bool) (tensor: torch.Tensor) : bool =
        if isNull (box tensor) then raise (ArgumentNullException("tensor"))
        let may = not tensor.IsInvalid && tensor.dtype <> torch.float16 && tensor.dtype <> torch.bfloat16 && grant tensor
        if may then env.Donation.Overwrote tensor
        may

    /// True when the running call owns <paramref name="tensor"/> and may change it in place:
    /// the call donates its state (and is outside any gradient, free to modify), the tensor is
    /// what one entry of the donated state holds, no other key holds it, it is contiguous and not
    /// float16 or bfloat16 (whose in-place ops libtorch rounds differently). Code that gets true
    /// may update the tensor in place (<c>lerp_</c>, <c>mul_</c>, a kernel's running statistics)
    /// and put it back, as the fused optimizer steps do; otherwise it computes a new tensor. The
    /// results are the same bit for bit either way; only the allocations differ. A true answer
    /// counts as a write in place: should the call fail afterwards, the donated state is marked.
    let mayUpdateInPlace (tensor: torch.Tensor) : Nj<bool> =
        Nj(fun env world -> struct (grantInPlace env (overwriteGrant env) tensor, world))

    /// mayUpdateInPlace as a function, for code that asks it of many tensors in one call (one
    /// interpreter step instead of one per tensor); it answers and counts exactly as
    /// mayUpdateInPlace does.
    let internal inPlaceGrant: Nj<torch.Tensor -> bool> =
        Nj(fun env world -> struct (grantInPlace env (overwriteGrant env), world))

    /// Like rng, but None when the call has no seed (ninjax's seed(optional=True)), for code
    /// that randomizes only when it can.
    let tryRng: Nj<torch.Generator option> =
        Nj(fun env world ->
            match env.Seed with
            | None -> struct (None, world)
            | Some _ ->
                let struct (g, w) = Monad.runIn env world Monad.rng
                struct (Some g, w))

    /// Runs a program with its randomness drawn from a stream kept in the state (as Flax NNX keeps
    /// its RNG count as state): the entries <c>key/seed</c> and <c>key/count</c> (int64 scalars).
    /// The program's generators derive from the seed and the count, and the count goes up by one
    /// when the program ends (when the call may modify: not under init or modify=false), so calls
    /// in a loop that passes each state to the next draw fresh randomness, and the same state
    /// always gives the same draws. When the entries are missing and the call may create, they
    /// are created from the call's seed (required then) with count 0; once the stream exists, it
    /// alone decides the randomness (a seed given to the call is not used).
    let withRngStream (key: string) (Nj m: Nj<'T>) : Nj<'T> =
        Key.validate key
        let seedKey, countKey = key + "/seed", key + "/count"
        Nj(fun env world ->
            let start =
                Nj(fun env w ->
                    match env.Seed with
                    | Some s -> struct (torch.tensor s, w)
                    | None ->
                        raise (
                            InvalidOperationException(
                                sprintf
                                    "%s starts a random stream at state key '%s' but has no seed to start it from: pass a seed to the call that creates it (%s)."
                                    env.Name key (Text.code env.Language "Nj.init 0L f, or Options.seeded 0L" "seed: 0")
                            )
                        ))
            if not env.Flags.Create && not (world.State.Entries.ContainsKey seedKey && world.State.Entries.ContainsKey countKey) then
                raise (
                    Collections.Generic.KeyNotFoundException(
                        sprintf
                            "%s draws from the random stream '%s', but the state has no '%s' and '%s' and the call may not create them (%s). Create the stream with %s."
                            env.Name key seedKey countKey (Errors.flagText env.Language env.Flags)
                            (Text.code env.Language "Nj.initWith (Options.seeded 0L |> Options.withRngStream \"rng\") f" "Nj.Init(f, rngStream: \"rng\")(state, seed: 0)")
                    )
                )
            let struct (seed, w1) = runIn env world (getKey seedKey (Some start))
            let struct (count, w2) = runIn env w1 (getKey countKey (Some(Nj(fun _ w -> struct (torch.tensor 0L, w)))))
            for k, t in [ seedKey, seed; countKey, count ] do
                if t.dtype <> torch.int64 || t.numel () <> 1L then
                    raise (
                        InvalidOperationException(
                            sprintf "The random stream entry '%s' holds shape %s dtype %O; a stream keeps an int64 scalar there. Was the key used for something else?" k (Text.shape t) t.dtype
                        )
                    )
            let c = count.ToInt64()
            let inner = { env with Seed = Some(int64 (Monad.derive (uint64 (seed.ToInt64())) c)) }
            let struct (value, w3) = m inner { w2 with Draws = 0L }
            let w3 = { w3 with Draws = w2.Draws }
            if env.Flags.Modify && not env.Flags.Ignore then
                let struct (_, w4) = runIn env w3 (putKey countKey (torch.tensor (c + 1L, device = count.device)))
                struct (value, w4)
            else struct (value, w3))

    // ---------------------------------------------------------------------------------------
    // Gradients (Gradients.fs)

    /// Differentiates a program's scalar loss with respect to state entries and explicit tensor
    /// inputs. When the program may create entries, it first runs once with ignore on so that
    /// entries it creates exist (ninjax's prerun). Writes the program makes are kept (a counter
    /// incremented inside the loss counts once per call) and detached from the graph unless a
    /// gradient encloses this one, in which case everything keeps its graph (grad of grad).
    let gradFull (f: torch.Tensor list -> Nj<torch.Tensor * 'Aux>) (targets: Target list) (inputs: torch.Tensor list) : Nj<Gradient<'Aux>> =
        Gradients.gradFull f targets inputs

    /// Differentiates a scalar loss with respect to state entries: (loss, params, grads).
    let grad (loss: Nj<torch.Tensor>) (targets: Target list) : Nj<torch.Tensor * State * State> = Gradients.grad loss targets

    /// Like grad, for a program that returns an auxiliary value beside the loss.
    let gradAux (lossAux: Nj<torch.Tensor * 'Aux>) (targets: Target list) : Nj<torch.Tensor * State * State * 'Aux> =
        Gradients.gradAux lossAux targets

    /// Differentiates a scalar loss with respect to the tensors at positions of its argument
    /// (ninjax's grad with argument numbers, <c>nj.grad(f, [0, 2])(x, y, z)</c>): the elements of
    /// a tuple argument are numbered from 0, a single tensor argument is position 0. Returns the
    /// loss, the tensors at those positions and their gradients, both in the order of
    /// <paramref name="argnums"/>. Writes the loss makes are kept, as in grad.
    let gradArgs (argnums: int list) (f: 'A -> Nj<torch.Tensor>) (arg: 'A) : Nj<torch.Tensor * torch.Tensor list * torch.Tensor list> =
        Nj(fun env world ->
            let o = box arg
            let parts, rebuild =
                match o with
                | null -> raise (ArgumentNullException("arg", "gradArgs needs an argument holding the tensors to differentiate."))
                | :? torch.Tensor as t -> [| box t |], (fun (ps: obj[]) -> unbox<'A> ps.[0])
                | _ when Microsoft.FSharp.Reflection.FSharpType.IsTuple(o.GetType()) ->
                    let codec = (Containers.codecOf (o.GetType())).Value
                    let names = codec.Names o
                    codec.Parts o, (fun ps -> codec.Build names ps :?> 'A)
                | _ ->
                    raise (
                        ArgumentException(
                            sprintf "%s numbers the arguments of a function of several arguments, or takes a single tensor; it got a %s. Differentiate with respect to tensors of other shapes with %s."
                                (Text.code env.Language "Nj.gradArgs" "Nj.GradArgs") (o.GetType().Name) (Text.code env.Language "Nj.gradFull" "Nj.GradInputs"),
                            "arg"
                        )
                    )
            if argnums.IsEmpty then raise (ArgumentException("Give at least one argument position to differentiate with respect to.", "argnums"))
            if List.distinct argnums <> argnums then
                raise (ArgumentException(sprintf "Argument positions [%s] repeat a position." (String.Join(", ", argnums)), "argnums"))
            for i in argnums do
                if i < 0 || i >= parts.Length then
                    raise (ArgumentOutOfRangeException("argnums", i, sprintf "Argument position %d is out of range: the function has %d argument%s (positions 0 to %d)." i parts.Length (if parts.Length = 1 then "" else "s") (parts.Length - 1)))
                match parts.[i] with
                | :? torch.Tensor -> ()
                | p ->
                    raise (
                        ArgumentException(
                            sprintf "Argument %d is a %s, not a tensor: only tensors can be differentiated." i (if isNull p then "null" else p.GetType().Name),
                            "argnums"
                        )
                    )
            let inputs = argnums |> List.map (fun i -> parts.[i] :?> torch.Tensor)
            let withLeaves (leaves: torch.Tensor list) : Nj<torch.Tensor * unit> =
                let ps = Array.copy parts
                List.iter2 (fun i (leaf: torch.Tensor) -> ps.[i] <- box leaf) argnums leaves
                f (rebuild ps) |> Monad.map (fun loss -> loss, ())
            Monad.runIn env world (Gradients.gradFull withLeaves [] inputs |> Monad.map (fun g -> g.Loss, inputs, g.InputGrads)))

    // ---------------------------------------------------------------------------------------
    // Control flow (ControlFlow.fs)

    /// Runs a program with its own seed and draw counter, so the randomness it sees does not
    /// depend on what ran before it; the caller's counter is left as it was.
    let reseed (seed: uint64) (program: Nj<'T>) : Nj<'T> = ControlFlow.reseed seed program

    /// Runs one of two programs. While creating, both run first with ignore on, so the state
    /// holds both branches' entries whichever branch later calls take (ninjax's cond); only the
    /// chosen branch's writes apply. Each branch has its own randomness.
    let cond (pred: bool) (onTrue: Nj<'T>) (onFalse: Nj<'T>) : Nj<'T> = ControlFlow.cond pred onTrue onFalse

    /// Loops a step over the slices of <paramref name="xs"/> along <paramref name="axis"/>,
    /// threading a carry and the state, with fresh randomness per step; the per-step outputs
    /// are stacked along the same axis (ninjax's scan). Gradients flow through every step.
    let scan (step: 'C -> torch.Tensor -> Nj<'C * torch.Tensor>) (carry: 'C) (xs: torch.Tensor) (axis: int) : Nj<'C * torch.Tensor> =
        ControlFlow.scan step carry xs axis

    /// scan with options: the axis, and Reverse to loop from the last step to the first (the
    /// outputs keep the order of xs; step i has the same randomness in either direction).
    let scanWith (options: ScanOptions) (step: 'C -> torch.Tensor -> Nj<'C * torch.Tensor>) (carry: 'C) (xs: torch.Tensor) : Nj<'C * torch.Tensor> =
        ControlFlow.scanWith options step carry xs

    /// Loops a step a number of times without xs (ninjax's scan with a length): the step gets
    /// the carry and its index; the outputs are stacked along the options' axis in index order.
    let scanLength (options: ScanOptions) (length: int64) (step: 'C -> int64 -> Nj<'C * torch.Tensor>) (carry: 'C) : Nj<'C * torch.Tensor> =
        ControlFlow.scanLength options length step carry

    /// Repeats a body while a condition holds, threading a carry and the state (JAX's
    /// while_loop), with fresh randomness per iteration (from one seed for the loop and the
    /// iteration's index). While creating, the body first runs once with ignore on, so its
    /// entries exist even if the condition is false from the start.
    let whileLoop (condition: 'C -> Nj<bool>) (body: 'C -> Nj<'C>) (carry: 'C) : Nj<'C> = ControlFlow.whileLoop condition body carry

    // ---------------------------------------------------------------------------------------
    // Gradient checkpointing (Recompute.fs)

    /// Runs a program that maps tensors to a tensor without keeping its activations for the
    /// backward pass: gradients recompute them (ninjax's checkpoint), trading compute for memory.
    /// Gradients reach the explicit inputs and every state entry the program reads. Results,
    /// randomness included, are those of running the program directly; writes apply once.
    let checkpoint (f: torch.Tensor list -> Nj<torch.Tensor>) (inputs: torch.Tensor list) : Nj<torch.Tensor> = Recompute.checkpoint f inputs
