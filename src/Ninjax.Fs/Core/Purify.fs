namespace Ninjax

open System
open System.Collections
open System.Collections.Concurrent
open System.Collections.Generic
open System.Linq.Expressions
open System.Reflection
open System.Runtime.CompilerServices
open Microsoft.FSharp.Reflection
open TorchSharp

/// How to run a purified call. Flags left as None take ninjax's defaults at the top level
/// (create off, modify on, ignore off) and the enclosing call's flags when nested.
type Options =
    {
        /// The seed randomness derives from; None makes Nj.rng fail with a clear message.
        Seed: int64 option
        /// May the call add keys?
        Create: bool option
        /// May the call change existing keys?
        Modify: bool option
        /// Are changes to existing keys silently dropped?
        Ignore: bool option
        /// May this call run inside another purified call?
        Nested: bool
        /// Does the caller hand its state over (JAX's donate_argnums)? A donating call may update
        /// the state's tensors in place (the Optimizer does) and frees the entries it replaces;
        /// the state passed in may not be used again. Top-level calls only.
        Donate: bool
        /// The function's name, for error messages; null takes the name of the method purified
        /// (<c>MyModel.Train</c>) when one is found.
        Name: string
        /// The language of the code that purifies, so that error messages show the API in the form
        /// it writes (the C# facade sets CSharp).
        Language: Language
        /// The state key of a random stream to draw randomness from (Options.withRngStream), or
        /// None to derive it from Seed alone.
        RngStream: string option
    }

/// Building options.
[<RequireQualifiedAccess>]
module Options =

    /// No seed, default flags, not nested.
    let defaults =
        { Seed = None; Create = None; Modify = None; Ignore = None; Nested = false; Donate = false; Name = null; Language = Language.FSharp; RngStream = None }

    /// Default options with a seed.
    let seeded (seed: int64) = { defaults with Seed = Some seed }

    /// Sets the seed.
    let withSeed (seed: int64) (o: Options) = { o with Seed = Some seed }

    /// Sets the create flag.
    let withCreate (create: bool) (o: Options) = { o with Create = Some create }

    /// Sets the modify flag.
    let withModify (modify: bool) (o: Options) = { o with Modify = Some modify }

    /// Sets the ignore flag.
    let withIgnore (ignore: bool) (o: Options) = { o with Ignore = Some ignore }

    /// Marks the call as allowed inside another purified call.
    let nested (o: Options) = { o with Nested = true }

    /// Makes the caller hand its state over on each call (JAX's donate_argnums): the call may
    /// update tensors in place and frees the entries it replaces, so a training loop allocates
    /// no new parameters or moments per step. The state passed in is unusable afterwards.
    let donating (o: Options) = { o with Donate = true }

    /// Names the function for error messages.
    let named (name: string) (o: Options) = { o with Name = name }

    /// Draws the call's randomness from a stream kept in the state under <paramref name="key"/>
    /// (<c>key/seed</c>, <c>key/count</c>; see Prog.withRngStream): each call that may modify
    /// advances it, so a training loop gets fresh randomness every step while every call stays a
    /// function of its state. The call that creates the stream (Nj.init) starts it from its seed.
    let withRngStream (key: string) (o: Options) =
        Key.validate key
        { o with RngStream = Some key }

    /// Sets the language error messages use to show the API (the C# facade sets CSharp).
    let withLanguage (language: Language) (o: Options) = { o with Language = language }

    /// Options named after <paramref name="f"/> (its method, such as <c>MyModel.Train</c>) unless
    /// they have a name: found once per function type, when a function is purified.
    let internal namedAfter (f: obj) (o: Options) =
        if isNull o.Name then
            match Naming.ofFunction f with
            | null -> o
            | name -> { o with Name = name }
        else o

    /// The name a call shows in messages.
    let internal nameOf (o: Options) = if isNull o.Name then Text.unnamed o.Language else o.Name

/// The outcome of a purified call with tracking: the new state, the output, and the keys the
/// call read, modified (even if ignored) and created.
type Outcome<'T> =
    {
        /// The state after the call.
        State: State
        /// What the function returned.
        Output: 'T
        /// Keys read.
        Read: Set<string>
        /// Existing keys written (even when the write was ignored).
        Modified: Set<string>
        /// Keys created.
        Created: Set<string>
    }

/// Finds the tensors inside a call's output, so they survive the call while its intermediates
/// are freed. Walks tensors, states, tuples (reference and struct), materialised collections and
/// dictionaries, F# records and unions (options included), key/value pairs, and the public
/// properties and fields of the user's own classes, records and structs (C# records included).
/// Lazy sequences are not enumerated: running them again could repeat their side effects.
/// Modules and the framework's own objects are not walked.
module internal Survivors =

    type private Shape =
        | Leaf
        | Collection
        | Fields of (obj -> obj[])

    let private shapes = ConcurrentDictionary<Type, Shape>()

    let private isMaterialised (t: Type) =
        t.IsArray
        || typeof<ICollection>.IsAssignableFrom t
        || t.GetInterfaces()
           |> Array.exists (fun i ->
               i.IsGenericType
               && (i.GetGenericTypeDefinition() = typedefof<IReadOnlyCollection<_>>
                   || i.GetGenericTypeDefinition() = typedefof<ICollection<_>>))

    /// Property getters compiled once per type, so walking an output costs no reflection.
    let private getters (properties: PropertyInfo list) : obj -> obj[] =
        let compiled =
            properties
            |> List.map (fun p ->
                let o = Expression.Parameter(typeof<obj>, "o")
                let body = Expression.Convert(Expression.Property(Expression.Convert(o, p.DeclaringType), p), typeof<obj>)
                Expression.Lambda<Func<obj, obj>>(body, o).Compile())
            |> Array.ofList
        fun o -> compiled |> Array.map (fun g -> try g.Invoke o with _ -> null)

    /// User data types worth walking: not the framework's, TorchSharp's or Ninjax's own objects
    /// (modules, generators), and not delegates.
    let private isPlainData (t: Type) =
        let ns = if isNull t.Namespace then "" else t.Namespace
        not (typeof<Delegate>.IsAssignableFrom t)
        && not (typeof<IScoped>.IsAssignableFrom t)
        && not (ns = "System" || ns.StartsWith "System." || ns.StartsWith "Microsoft." || ns = "TorchSharp" || ns.StartsWith "TorchSharp." || ns = "Ninjax")

    let private shapeOf (t: Type) : Shape =
        shapes.GetOrAdd(
            t,
            Func<Type, Shape>(fun t ->
                if t.IsPrimitive || t.IsEnum || t = typeof<string> || t = typeof<decimal> then Leaf
                elif typeof<IEnumerable>.IsAssignableFrom t then
                    if isMaterialised t then Collection else Leaf
                elif FSharpType.IsRecord(t, true) then
                    let read = FSharpValue.PreComputeRecordReader(t, true)
                    Fields(fun o -> read o |> Array.map box)
                elif FSharpType.IsUnion(t, true) then
                    let tag = FSharpValue.PreComputeUnionTagReader(t, true)
                    let cases = FSharpType.GetUnionCases(t, true) |> Array.map (fun c -> FSharpValue.PreComputeUnionReader(c, true))
                    Fields(fun o -> cases.[tag o] o)
                elif t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<KeyValuePair<_, _>> then
                    Fields(getters [ t.GetProperty "Key"; t.GetProperty "Value" ])
                elif isPlainData t then
                    // C# records, classes and structs of the user's: their public readable properties and fields.
                    let properties =
                        t.GetProperties(BindingFlags.Public ||| BindingFlags.Instance)
                        |> Array.filter (fun p -> p.CanRead && p.GetIndexParameters().Length = 0 && p.Name <> "EqualityContract")
                    let fields = t.GetFields(BindingFlags.Public ||| BindingFlags.Instance)
                    let read = getters (List.ofArray properties)
                    Fields(fun o -> Array.append (read o) (fields |> Array.map (fun f -> f.GetValue o)))
                else Leaf)
        )

    let rec private walk (seen: HashSet<obj>) (o: obj) (acc: ResizeArray<torch.Tensor>) : unit =
        match o with
        | null -> ()
        | :? torch.Tensor as t -> acc.Add t
        | :? State as s ->
            if seen.Add s then
                for kv in s.Entries do
                    acc.Add kv.Value
        | :? ITuple as tuple ->
            for i in 0 .. tuple.Length - 1 do
                walk seen tuple.[i] acc
        | _ ->
            match shapeOf (o.GetType()) with
            | Leaf -> ()
            | _ when not (o.GetType().IsValueType) && not (seen.Add o) -> () // a cycle
            | Collection ->
                for x in (o :?> IEnumerable) do
                    walk seen x acc
            | Fields read ->
                for x in read o do
                    walk seen x acc

    /// Adds every tensor reachable from an output to the list, and returns the objects walked
    /// (the states among them included).
    let collect (o: obj) (acc: ResizeArray<torch.Tensor>) : HashSet<obj> =
        let seen = HashSet<obj>(HashIdentity.Reference)
        walk seen o acc
        seen

/// Purification: running a program on an explicit state. This is the one place that defines
/// what pure and init mean; everything else (the impure API, the C# facade) calls into it.
[<RequireQualifiedAccess>]
module Purify =

    /// The flags a call runs with, from its options and the enclosing call (if any). An inner
    /// call may not loosen the outer call's flags.
    let internal resolveFlags (opts: Options) (name: string) (outer: Frame) : Flags =
        match outer with
        | null ->
            {
                Create = defaultArg opts.Create false
                Modify = defaultArg opts.Modify true
                Ignore = defaultArg opts.Ignore false
            }
        | frame ->
            let lang = opts.Language
            if not opts.Nested then
                raise (
                    InvalidOperationException(
                        sprintf
                            "%s is called inside %s, another purified call. If that is intended, purify the inner function as nested (%s)."
                            name frame.Env.Name (Text.code lang "Nj.purifyWith (Options.defaults |> Options.nested) f" "Nj.Pure(f, nested: true)")
                    )
                )
            let o = frame.Env.Flags
            let flags =
                {
                    Create = defaultArg opts.Create o.Create
                    Modify = defaultArg opts.Modify o.Modify
                    Ignore = defaultArg opts.Ignore o.Ignore
                }
            let loosen flag value =
                InvalidOperationException(
                    sprintf "%s asks for %s inside %s, which has %s; an inner call cannot loosen its flags."
                        name (Text.flag lang flag value) frame.Env.Name (Text.flag lang flag (not value))
                )
            if flags.Create && not o.Create then raise (loosen "create" true)
            if flags.Modify && not o.Modify then raise (loosen "modify" true)
            if o.Ignore && not flags.Ignore then raise (loosen "ignore" false)
            flags

    /// The entries a call created or gave another tensor (World.Replaced), each once, with the
    /// tensor the caller's state held under each (null for a created key) and the one the call
    /// leaves there: one lookup in each map per key, shared by everything the call does when it
    /// returns. The other modified keys still hold the caller's tensors (updated in place, or a
    /// write ignored): nothing to hand out, count or free for them. (An overwritten tensor that
    /// another key now holds is that key's replacement, so finishDonation sees it there.)
    /// A key of the sets may be missing from the state: a nested call's keys count for the call
    /// around it, which need not adopt the state the nested call returned.
    let private writtenEntries (input: Map<string, torch.Tensor>) (world: World) : WrittenEntry[] =
        let now = world.State.Entries
        let created = world.Created
        let written = ResizeArray<WrittenEntry>(created.Count + world.Replaced.Count)
        let add (key: string) (before: torch.Tensor) =
            match now.TryGetValue key with
            | true, after -> written.Add { Key = key; Before = before; After = after }
            | _ -> ()
        for key in created.Unordered do
            add key null
        for key in world.Replaced.Unordered do
            if not (created.Contains key) then add key (match input.TryGetValue key with | true, t -> t | _ -> null)
        written.ToArray()

    /// True when the list holds this very tensor object.
    let private holdsObject (tensors: ResizeArray<torch.Tensor>) (t: torch.Tensor) =
        let mutable found = false
        let mutable i = 0
        while not found && i < tensors.Count do
            found <- obj.ReferenceEquals(tensors.[i], t)
            i <- i + 1
        found

    /// What a donating call does when it returns: the checks that its output and new state do
    /// not hold a tensor it overwrote in place (they could not tell the value before the update
    /// from the one after); the replaced entries of the donated state freed, unless the output,
    /// the new state or another key of the donated state still holds them; and the donated state
    /// marked. Returns the world with the state the caller gets.
    let private finishDonation (name: string) (language: Language) (donation: Donation) (log: CallLog) (world: World) (written: WrittenEntry[]) (fromOutput: ResizeArray<torch.Tensor>) (walked: HashSet<obj>) : World =
        let donated = donation.Input
        let now = world.State.Entries
        // Only for error messages: the first key other than `except` that holds the tensor.
        let keyOf (t: torch.Tensor) (except: string) =
            now
            |> Seq.tryFind (fun kv -> obj.ReferenceEquals(kv.Value, t) && kv.Key <> except)
            |> Option.map (fun kv -> kv.Key)
            |> Option.defaultValue "?"
        for t in fromOutput do
            if donation.WasOverwritten t then
                raise (
                    InvalidOperationException(
                        sprintf "%s returns the tensor of state entry '%s', which it updated in place because its state was donated (%s): the output cannot tell the value before the update from the one after. Return a copy (tensor.clone()), or purify without donation." name (keyOf t "") (Text.code language "Options.donating" "donate: true")
                    )
                )
        // The new values of the keys the call wrote. An overwritten tensor must stay one key's only:
        // only one key held it (MayOverwrite), so a written key that holds it now and did not
        // before shares it.
        let handles = HashSet<nativeint>(written.Length)
        for w in written do
            let v = w.After
            if not v.IsInvalid then handles.Add v.Handle |> ignore
            if not v.IsInvalid && not (obj.ReferenceEquals(v, w.Before)) && donation.WasOverwritten v then
                raise (
                    InvalidOperationException(
                        sprintf "%s wrote the tensor of state entry '%s' under '%s' too, and updated it in place because its state was donated (%s): the two keys would share one tensor. Write a copy (tensor.clone()), or purify without donation." name (keyOf v w.Key) w.Key (Text.code language "Options.donating" "donate: true")
                    )
                )
        // The count of holders the next donating call needs, taken while the tensors it names live.
        let changes = donation.Changes written
        for w in written do
            let old = w.Before
            if not (isNull old) && not old.IsInvalid && not (handles.Contains old.Handle) && not (holdsObject fromOutput old) && donation.Holders old = 1 then
                old.Dispose()
        // Updates made in place (by the optimizer, or by the call's own code) leave the map as it
        // was; the caller still gets a new State, so that the donated one can be marked.
        let world =
            if obj.ReferenceEquals(world.State, donated) && (donation.OverwrittenCount > 0 || log.AnyChanged()) then
                { world with State = State(now, world.State.Structure) }
            else world
        // Nothing to hand over when the call changed nothing, when the output holds the donated
        // state itself (Prog.state before any write), or when it is empty (the shared State.empty
        // must stay usable).
        if not (obj.ReferenceEquals(world.State, donated)) && not (walked.Contains donated) && not donated.Entries.IsEmpty then
            donated.Donate(name, language)
            donation.HandOn(world.State, changes)
        world

    /// The error for code that changed tensors of the caller's state in place in a call that
    /// does not own them (no donation): no flag can undo such a change.
    let private changedInPlace (name: string) (language: Language) (keys: string list) (failure: exn) : exn =
        let keyText = String.Join(", ", keys |> List.truncate 5 |> List.map (sprintf "'%s'"))
        let message =
            sprintf
                "%s changed the tensor of state entr%s %s in place (an operation ending in _, such as mul_, add_ or copy_)%s: the caller's state holds that tensor, so the caller's state has changed too, which a purified call must never do. Compute a new tensor and put it (mul instead of mul_), or donate the state (%s) to let the call update its tensors in place."
                name
                (if keys.Length = 1 then "y" else "ies")
                keyText
                (if isNull failure then "" else sprintf ", and then failed (%s)" failure.Message)
                (Text.code language "Options.donating" "donate: true")
        if isNull failure then InvalidOperationException(message) :> exn else InvalidOperationException(message, failure) :> exn

    /// Runs a program on a state and returns its output and the world it ends in (run without
    /// building the outcome's sets: the untracked calls' path).
    let internal execute (opts: Options) (program: Nj<'T>) (state: State) : struct ('T * World) =
        if isNull state then
            raise (ArgumentNullException("state", sprintf "Pass a state (%s to start from nothing)." (Text.code opts.Language "State.empty" "States.Empty")))
        LibTorchCheck.ensure ()
        Tuning.apply ()
        // A state donated before cannot be used again: this raises, naming the call it went to.
        let input = state.Entries
        let outer =
            match Ambient.tryCurrent () with
            | null -> null
            // A frame left in an async flow by a call that has returned: this call is top-level.
            | frame when frame.Closed -> null
            // The enclosing call, which must run on this thread.
            | _ -> Ambient.usableFrame ()
        let name = Options.nameOf opts
        let flags = resolveFlags opts name outer
        if opts.Donate && not (isNull outer) then
            raise (
                InvalidOperationException(
                    sprintf "%s donates its state (%s) but runs inside %s: only a top-level call can take over its caller's state. Purify the inner function without donation." name (Text.code opts.Language "Options.donating" "donate: true") outer.Env.Name
                )
            )
        if isNull outer then
            match state.ClaimedBy with
            | null -> ()
            | holder ->
                raise (
                    InvalidOperationException(
                        sprintf "This state is being donated to %s, which is still running: %s cannot use it at the same time, because that call updates its tensors in place and frees the entries it replaces. Wait for that call and use the state it returns." holder name
                    )
                )
        // A donating call owns the state until it returns: a second call on it fails.
        // An empty state (State.empty is shared by every caller) holds nothing to update in place:
        // claiming it would make unrelated calls on other threads fail while this one runs.
        let claims = opts.Donate && not state.Entries.IsEmpty
        if claims then state.Claim name
        try
            let donation = if opts.Donate then Donation state else null
            let log = CallLog(if isNull outer then null else outer.Env.Log)
            let env =
                {
                    // Purification does not change the name scope (ninjax's scope is global).
                    Scope = Ambient.currentScope ()
                    Flags = flags
                    Seed = opts.Seed
                    Name = name
                    Language = opts.Language
                    GradDepth = (if isNull outer then 0 else outer.Env.GradDepth)
                    Disposables = ResizeArray()
                    Donation = donation
                    Log = log
                    ShapesOnly = not (isNull outer) && outer.Env.ShapesOnly
                }
            let world0 = { State = state; Draws = 0L; Read = KeySet.empty; Modified = KeySet.empty; Replaced = KeySet.empty; Created = KeySet.empty }
            // What earlier calls handed out and the caller has dropped since: collect it if it is much.
            let topLevel = isNull outer
            if topLevel then NativeMemory.collectIfDue ()
            let scope = torch.NewDisposeScope()
            try
                try
                    let struct (output, world) =
                        let program = match opts.RngStream with Some key -> Prog.withRngStream key program | None -> program
                        try
                            Prog.runIn env world0 program
                        with failure when isNull donation ->
                            match log.ChangedInputs input with
                            | [] -> reraise ()
                            | keys -> raise (changedInPlace name opts.Language keys failure)
                    if isNull donation then
                        match log.ChangedInputs input with
                        | [] -> ()
                        | keys -> raise (changedInPlace name opts.Language keys null)
                    let fromOutput = ResizeArray<torch.Tensor>()
                    let walked = Survivors.collect (box output) fromOutput
                    for t in fromOutput do
                        if scope.Contains t then
                            scope.MoveToOuter t |> ignore
                            if topLevel then NativeMemory.handedOut t
                    // A donating call frees the entries it replaces itself; without donation they
                    // wait for the GC, which the new entries' size tells when to come.
                    let counted = topLevel && isNull donation
                    let written = if scope.DisposablesCount > 0 || not (isNull donation) then writtenEntries input world else [||]
                    if scope.DisposablesCount > 0 then
                        for w in written do
                            let v = w.After
                            // A tensor the key held before the call (written back, or updated in place)
                            // was not made in it: no need to ask the scope.
                            if not (obj.ReferenceEquals(w.Before, v)) && scope.Contains v then
                                scope.MoveToOuter v |> ignore
                                if counted then NativeMemory.handedOut v
                    let world = if isNull donation then world else finishDonation name opts.Language donation log world written fromOutput walked
                    if not (isNull outer) then
                        let w = outer.World
                        outer.World <-
                            { w with
                                Read = KeySet.union w.Read world.Read
                                Modified = KeySet.union w.Modified world.Modified
                                Replaced = KeySet.union w.Replaced world.Replaced
                                Created = KeySet.union w.Created world.Created }
                    struct (output, world)
                with _ when not (isNull donation) ->
                    // Some of the donated tensors may hold new values now (a step half done, or the
                    // output found to hold an updated tensor): the old state is gone.
                    if donation.OverwrittenCount > 0 || donation.GrantedCount > 0 || not (log.ChangedInputs input).IsEmpty then
                        state.Donate(name + ", which failed after updating some of its tensors in place", opts.Language)
                    reraise ()
            finally
                scope.Dispose()
                for d in env.Disposables do
                    d.Dispose()
        finally
            if claims then state.Release()

    /// Runs a program on a state and returns the outcome. The input state is never changed,
    /// unless the options donate it: code that changes one of its tensors in place makes the call
    /// fail, naming the key. Tensors the program creates are freed when it returns, except those
    /// in its output and the new or changed state entries.
    let run (opts: Options) (program: Nj<'T>) (state: State) : Outcome<'T> =
        let struct (output, world) = execute opts program state
        { State = world.State; Output = output; Read = KeySet.toSet world.Read; Modified = KeySet.toSet world.Modified; Created = KeySet.toSet world.Created }

    /// A function returning a program, purified: state and argument in, new state and output out.
    let fn (opts: Options) (f: 'A -> Nj<'B>) : State -> 'A -> State * 'B =
        let opts = Options.namedAfter f opts
        fun state arg ->
            let struct (output, world) = execute opts (f arg) state
            world.State, output

    /// Runs a program with create and ignore on and returns only the state: it adds every entry
    /// the program would create and keeps every existing entry as it was.
    let init (opts: Options) (f: 'A -> Nj<'B>) : State -> 'A -> State =
        let opts = { Options.namedAfter f opts with Create = Some true; Modify = Some true; Ignore = Some true }
        fun state arg ->
            let struct (_, world) = execute opts (f arg) state
            world.State

    /// The entries init would create, as shapes and dtypes only (JAX's eval_shape): a State of
    /// tensors on the meta device, which hold no memory. The program runs once, as init does, but
    /// gradients are not computed (zeros stand in) and tensor arguments on the meta device stand
    /// for inputs of their shape (they become zeros on the CPU for the run), so an example's shape
    /// is all it needs. The real tensors the run made are freed. Checkpoint.loadInto accepts the
    /// result as the expected structure.
    let initShapes (opts: Options) (f: 'A -> Nj<'B>) : State -> 'A -> State =
        let opts = { Options.namedAfter f opts with Create = Some true; Modify = Some true; Ignore = Some true }
        fun state arg ->
            if isNull state then
                raise (ArgumentNullException("state", sprintf "Pass a state (%s to start from nothing)." (Text.code opts.Language "State.empty" "States.Empty")))
            let made = ResizeArray<torch.Tensor>()
            let stand (t: torch.Tensor) =
                if t.device_type = DeviceType.META then
                    let z = torch.zeros(Array.init (int t.Dimensions) (fun i -> t.size i), dtype = t.dtype)
                    made.Add z
                    z
                else t
            try
                let arg = Containers.mapTensors stand (box arg) :?> 'A
                let (Nj m) = f arg
                let program = Nj(fun env world -> m { env with ShapesOnly = true } world)
                let struct (_, world) = execute opts program state
                let shapes =
                    world.State
                    |> State.toSeq
                    |> Seq.map (fun (k, t) -> k, (if t.device_type = DeviceType.META then t else t.``to`` torch.META))
                    |> Array.ofSeq
                for k in world.Created do
                    world.State.[k].Dispose()
                State.ofValidPairs shapes
            finally
                for z in made do
                    z.Dispose()
