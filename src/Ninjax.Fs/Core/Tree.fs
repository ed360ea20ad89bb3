namespace Ninjax

open System
open System.Collections
open System.Collections.Concurrent
open System.Collections.Generic
open System.Linq.Expressions
open System.Reflection
open Microsoft.FSharp.Reflection
open TorchSharp

/// How one kind of container is taken apart and put back together: the names of its parts (the
/// key segments they are stored under), the parts themselves, and a constructor from parts.
/// Accessors are compiled once per type, so taking a value apart costs no reflection.
type internal Codec =
    {
        /// A short word for messages: record, tuple, array, list, dictionary, state, object.
        Kind: string
        /// The names of the parts of a value, in the order of Parts.
        Names: obj -> string[]
        /// The parts of a value.
        Parts: obj -> obj[]
        /// A value from names and parts (names matter for dictionaries and states only).
        Build: string[] -> obj[] -> obj
    }

/// The structure of a value: a tensor, or a container of a type with named parts.
[<CustomEquality; NoComparison>]
type internal Node =
    | Leaf
    | Branch of Type * string[] * Node[]

    override this.Equals(other: obj) =
        match other with
        | :? Node as o ->
            match this, o with
            | Leaf, Leaf -> true
            | Branch(t1, n1, c1), Branch(t2, n2, c2) ->
                t1 = t2 && n1.Length = n2.Length && Array.forall2 (=) n1 n2 && Array.forall2 (fun (a: Node) b -> a.Equals b) c1 c2
            | _ -> false
        | _ -> false

    override this.GetHashCode() =
        match this with
        | Leaf -> 1
        | Branch(t, names, _) -> t.GetHashCode() ^^^ names.Length

/// The structure of a value made of tensors (ninjax's treedef): which containers hold which
/// tensors under which names. Two values have equal structures when they are the same types of
/// containers with the same names all the way down; the tensors' shapes are not part of it.
[<Sealed; AllowNullLiteral>]
type TreeDef internal (node: Node, keys: string[]) =

    member internal _.Node = node

    /// The keys of the tensors, relative to the tree, in the order flatten lists them.
    member _.Keys: IReadOnlyList<string> = keys :> IReadOnlyList<string>

    /// The type of the value the structure describes.
    member _.Type: Type =
        match node with
        | Leaf -> typeof<torch.Tensor>
        | Branch(t, _, _) -> t

    /// True when both describe the same structure.
    override _.Equals(other: obj) =
        match other with
        | :? TreeDef as o -> node.Equals o.Node
        | _ -> false

    override _.GetHashCode() = node.GetHashCode()

    /// The type and the keys, for messages.
    override this.ToString() =
        let shown = keys |> Seq.truncate 12 |> String.concat ", "
        let more = if keys.Length > 12 then sprintf ", ... (%d keys)" keys.Length else ""
        sprintf "%s {%s%s}" (this.Type.Name) shown more

/// Taking structured values (records, tuples, arrays, lists, dictionaries, states, C# records) apart
/// into named tensors and building them again: ninjax's flatten and unflatten, which Tree stores in
/// the state. The parts of a record or C# record are named by its fields, of a tuple, array or
/// list by their positions (0, 1, ...), of a dictionary or state by its keys.
module internal Containers =

    let private codecs = ConcurrentDictionary<Type, Codec option>()

    let private isFrameworkType (t: Type) =
        let ns = if isNull t.Namespace then "" else t.Namespace
        ns = "System" || ns.StartsWith "System." || ns.StartsWith "Microsoft." || ns = "TorchSharp" || ns.StartsWith "TorchSharp."

    /// A compiled getter for a property or field, boxed.
    let private getter (declaring: Type) (memberInfo: MemberInfo) : Func<obj, obj> =
        let o = Expression.Parameter(typeof<obj>, "o")
        let access: Expression =
            match memberInfo with
            | :? PropertyInfo as p -> Expression.Property(Expression.Convert(o, declaring), p)
            | :? FieldInfo as f -> Expression.Field(Expression.Convert(o, declaring), f)
            | _ -> invalidOp "a property or field"
        Expression.Lambda<Func<obj, obj>>(Expression.Convert(access, typeof<obj>), o).Compile()

    /// A compiled call of a constructor on boxed arguments.
    let private constructor (ctor: ConstructorInfo) : Func<obj[], obj> =
        let args = Expression.Parameter(typeof<obj[]>, "args")
        let parameters =
            ctor.GetParameters()
            |> Array.mapi (fun i p -> Expression.Convert(Expression.ArrayIndex(args, Expression.Constant i), p.ParameterType) :> Expression)
        Expression.Lambda<Func<obj[], obj>>(Expression.Convert(Expression.New(ctor, parameters), typeof<obj>), args).Compile()

    let private fixedCodec (kind: string) (names: string[]) (getters: Func<obj, obj>[]) (build: obj[] -> obj) : Codec =
        {
            Kind = kind
            Names = fun _ -> names
            Parts = fun o -> getters |> Array.map (fun g -> g.Invoke o)
            Build = fun _ parts -> build parts
        }

    let private indices (n: int) = Array.init n string

    // Builders of generic collections, instantiated once per element type.
    type private Builders =
        static member Array<'E>(parts: obj[]) : obj = box (Array.map unbox<'E> parts)
        static member FsList<'E>(parts: obj[]) : obj = box (List.ofArray (Array.map unbox<'E> parts))
        static member ResizeArray<'E>(parts: obj[]) : obj = box (ResizeArray<'E>(Array.map unbox<'E> parts))
        static member Map<'V>(names: string[], parts: obj[]) : obj = box (Array.fold2 (fun (m: Map<string, 'V>) k v -> m.Add(k, unbox<'V> v)) Map.empty names parts)
        static member Dictionary<'V>(names: string[], parts: obj[]) : obj =
            let d = Dictionary<string, 'V>(names.Length, StringComparer.Ordinal)
            Array.iter2 (fun k v -> d.[k] <- unbox<'V> v) names parts
            box d
        static member MapKeys<'V>(o: obj) : string[] = (o :?> Map<string, 'V>) |> Seq.map (fun kv -> kv.Key) |> Array.ofSeq
        static member MapParts<'V>(o: obj) : obj[] = (o :?> Map<string, 'V>) |> Seq.map (fun kv -> box kv.Value) |> Array.ofSeq
        static member DictionaryKeys<'V>(o: obj) : string[] =
            (o :?> Dictionary<string, 'V>).Keys |> Array.ofSeq |> Array.sortWith (fun a b -> String.CompareOrdinal(a, b))
        static member DictionaryParts<'V>(o: obj) : obj[] =
            let d = o :?> Dictionary<string, 'V>
            Builders.DictionaryKeys<'V> o |> Array.map (fun k -> box d.[k])

    let private builder<'D when 'D :> Delegate> (name: string) (typeArg: Type) : 'D =
        typeof<Builders>
            .GetMethod(name, BindingFlags.Static ||| BindingFlags.Public ||| BindingFlags.NonPublic)
            .MakeGenericMethod(typeArg)
            .CreateDelegate(typeof<'D>)
        :?> 'D

    let private sequenceCodec (kind: string) (build: Func<obj[], obj>) : Codec =
        {
            Kind = kind
            Names = fun o -> indices (o :?> ICollection).Count
            Parts = fun o -> (o :?> IEnumerable) |> Seq.cast<obj> |> Array.ofSeq
            Build = fun _ parts -> build.Invoke parts
        }

    let private fsListCodec (build: Func<obj[], obj>) : Codec =
        {
            Kind = "list"
            Names = fun o -> indices ((o :?> IEnumerable) |> Seq.cast<obj> |> Seq.length)
            Parts = fun o -> (o :?> IEnumerable) |> Seq.cast<obj> |> Array.ofSeq
            Build = fun _ parts -> build.Invoke parts
        }

    let private keyedCodec (kind: string) (keys: Func<obj, string[]>) (parts: Func<obj, obj[]>) (build: Func<string[], obj[], obj>) : Codec =
        { Kind = kind; Names = keys.Invoke; Parts = parts.Invoke; Build = fun names xs -> build.Invoke(names, xs) }

    let private tupleCodec (t: Type) : Codec =
        let n = FSharpType.GetTupleElements(t).Length
        if t.GetGenericArguments().Length <= 7 then
            // Item1..ItemN: properties of System.Tuple, fields of System.ValueTuple.
            let members =
                Array.init n (fun i ->
                    let name = sprintf "Item%d" (i + 1)
                    match t.GetProperty name with
                    | null -> t.GetField name :> MemberInfo
                    | p -> p :> MemberInfo)
            let getters = members |> Array.map (getter t)
            let ctor = constructor (t.GetConstructor(t.GetGenericArguments()))
            fixedCodec "tuple" (indices n) getters ctor.Invoke
        else
            // Eight or more elements nest a Rest tuple; rare enough for FSharp.Core's readers.
            let read = FSharpValue.PreComputeTupleReader t
            let make = FSharpValue.PreComputeTupleConstructor t
            { Kind = "tuple"; Names = (let names = indices n in fun _ -> names); Parts = read; Build = fun _ parts -> make parts }

    /// The constructor of a C# record or class whose parameters are its public properties: the
    /// one with the most parameters that all match a readable property (by name, ignoring case).
    let private objectCodec (t: Type) : Codec option =
        let properties =
            t.GetProperties(BindingFlags.Public ||| BindingFlags.Instance)
            |> Array.filter (fun p -> p.CanRead && p.GetIndexParameters().Length = 0 && p.Name <> "EqualityContract")
        let matching (c: ConstructorInfo) =
            let ps = c.GetParameters()
            let found =
                ps
                |> Array.map (fun p ->
                    properties
                    |> Array.tryFind (fun q -> String.Equals(q.Name, p.Name, StringComparison.OrdinalIgnoreCase) && p.ParameterType.IsAssignableFrom q.PropertyType))
            if ps.Length > 0 && Array.forall Option.isSome found then Some(c, Array.map Option.get found) else None
        let candidates = t.GetConstructors() |> Array.choose matching
        if candidates.Length = 0 then None
        else
            let ctor, covered = candidates |> Array.maxBy (fun (c, _) -> c.GetParameters().Length)
            let uncovered = properties |> Array.filter (fun p -> not (Array.contains p covered))
            if uncovered.Length > 0 then
                // Rebuilding the value would lose what those properties hold.
                None
            else
                let build = constructor ctor
                Some(fixedCodec "object" (covered |> Array.map (fun p -> p.Name)) (covered |> Array.map (getter t)) build.Invoke)

    let private makeCodec (t: Type) : Codec option =
        if t = typeof<State> then
            Some
                {
                    Kind = "state"
                    Names = fun o -> (o :?> State).Entries |> Seq.map (fun kv -> kv.Key) |> Array.ofSeq
                    Parts = fun o -> (o :?> State).Entries |> Seq.map (fun kv -> box kv.Value) |> Array.ofSeq
                    Build = fun names parts -> box (State.ofValidPairs (Seq.zip names (parts |> Seq.map unbox<torch.Tensor>)))
                }
        elif FSharpType.IsTuple t then Some(tupleCodec t)
        elif FSharpType.IsRecord(t, true) then
            let fields = FSharpType.GetRecordFields(t, true)
            let ctor = constructor (FSharpValue.PreComputeRecordConstructorInfo(t, true))
            Some(fixedCodec "record" (fields |> Array.map (fun f -> f.Name)) (fields |> Array.map (getter t)) ctor.Invoke)
        elif t.IsArray && t.GetArrayRank() = 1 then
            Some(sequenceCodec "array" (builder<Func<obj[], obj>> "Array" (t.GetElementType())))
        elif t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<list<_>> then
            Some(fsListCodec (builder<Func<obj[], obj>> "FsList" (t.GetGenericArguments().[0])))
        elif t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<ResizeArray<_>> then
            Some(sequenceCodec "list" (builder<Func<obj[], obj>> "ResizeArray" (t.GetGenericArguments().[0])))
        elif t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<Map<_, _>> && t.GetGenericArguments().[0] = typeof<string> then
            let v = t.GetGenericArguments().[1]
            Some(keyedCodec "dictionary" (builder "MapKeys" v) (builder "MapParts" v) (builder "Map" v))
        elif t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<Dictionary<_, _>> && t.GetGenericArguments().[0] = typeof<string> then
            let v = t.GetGenericArguments().[1]
            Some(keyedCodec "dictionary" (builder "DictionaryKeys" v) (builder "DictionaryParts" v) (builder "Dictionary" v))
        elif t.IsPrimitive || t.IsEnum || t = typeof<string> || t = typeof<decimal> || isFrameworkType t then None
        elif typeof<Delegate>.IsAssignableFrom t || typeof<IScoped>.IsAssignableFrom t then None
        elif FSharpType.IsUnion(t, true) then None
        else objectCodec t

    /// How values of a type are taken apart, or None when they are not containers Containers knows.
    let codecOf (t: Type) : Codec option = codecs.GetOrAdd(t, Func<Type, Codec option>(makeCodec))

    let private supported =
        "tensors, F# records, tuples (reference or struct), arrays, F# lists, List<T>, Map<string, T> or Dictionary<string, T>, States, and C# records or classes whose constructor takes all their public properties"

    /// Takes a value apart into its tensors (with their keys, relative to the value) and its
    /// structure. ArgumentException naming the path of a part that is neither a tensor nor a
    /// container Containers knows, of a null part, and of a name that cannot be a key segment.
    let flatten (value: obj) : (string * torch.Tensor)[] * TreeDef =
        let acc = ResizeArray<string * torch.Tensor>()
        let where (path: string) = if path = "" then "the value" else sprintf "'%s'" path
        let rec walk (path: string) (o: obj) : Node =
            match o with
            | null -> raise (ArgumentException(sprintf "Cannot flatten %s: it is null. A tree holds %s." (where path) supported, "value"))
            | :? torch.Tensor as t ->
                if t.IsInvalid then raise (ArgumentException(sprintf "Cannot flatten %s: the tensor was disposed." (where path), "value"))
                acc.Add(path, t)
                Leaf
            | _ ->
                let t = o.GetType()
                match codecOf t with
                | None ->
                    raise (
                        ArgumentException(
                            sprintf "Cannot flatten %s: a %s is not a tensor or a container of tensors. A tree holds %s; store numbers as 0-d tensors." (where path) t.Name supported,
                            "value"
                        )
                    )
                | Some codec ->
                    let names = codec.Names o
                    let parts = codec.Parts o
                    for n in names do
                        match Key.problem n with
                        | Some why -> raise (ArgumentException(sprintf "Cannot flatten %s (a %s): its part '%s' cannot name a state key: %s." (where path) codec.Kind n why, "value"))
                        | None -> ()
                    Branch(t, names, Array.init names.Length (fun i -> walk (Key.join path names.[i]) parts.[i]))
        let node = walk "" value
        if node = Leaf then
            raise (ArgumentException("Cannot flatten a bare tensor: it has no key of its own. Use a Variable for one tensor, or put it in a record or tuple.", "value"))
        let pairs = acc.ToArray()
        pairs, TreeDef(node, pairs |> Array.map fst)

    /// Builds a value of a structure from its tensors, looked up by key.
    let unflatten (def: TreeDef) (lookup: string -> torch.Tensor) : obj =
        let rec build (path: string) (node: Node) : obj =
            match node with
            | Leaf -> box (lookup path)
            | Branch(t, names, children) ->
                match codecOf t with
                | Some codec -> codec.Build names (Array.init names.Length (fun i -> build (Key.join path names.[i]) children.[i]))
                | None -> invalidOp (sprintf "no codec for %s" t.Name)
        build "" def.Node

    /// Builds a value of a structure from its tensors in the order flatten lists them.
    let unflattenInOrder (def: TreeDef) (values: torch.Tensor[]) : obj =
        let mutable next = 0
        let rec build (node: Node) : obj =
            match node with
            | Leaf ->
                let t = values.[next]
                next <- next + 1
                box t
            | Branch(t, names, children) ->
                match codecOf t with
                | Some codec -> codec.Build names (children |> Array.map build)
                | None -> invalidOp (sprintf "no codec for %s" t.Name)
        build def.Node

    /// Where two structures first differ, for messages.
    let difference (expected: TreeDef) (actual: TreeDef) : string =
        let rec go (path: string) (e: Node) (a: Node) : string option =
            let at = if path = "" then "at the top" else sprintf "at '%s'" path
            match e, a with
            | Leaf, Leaf -> None
            | Leaf, Branch(t, _, _) -> Some(sprintf "%s: expected a tensor, got a %s" at t.Name)
            | Branch(t, _, _), Leaf -> Some(sprintf "%s: expected a %s, got a tensor" at t.Name)
            | Branch(te, ne, ce), Branch(ta, na, ca) ->
                if te <> ta then Some(sprintf "%s: expected a %s, got a %s" at te.Name ta.Name)
                elif ne <> na then
                    Some(sprintf "%s: expected the parts [%s], got [%s]" at (String.Join(", ", ne)) (String.Join(", ", na)))
                else Seq.zip3 ne ce ca |> Seq.tryPick (fun (n, x, y) -> go (Key.join path n) x y)
        defaultArg (go "" expected.Node actual.Node) "they are equal"

    /// A value with every tensor inside it replaced by <paramref name="f"/>; parts that are not
    /// tensors or known containers are kept as they are.
    let mapTensors (f: torch.Tensor -> torch.Tensor) (value: obj) : obj =
        let rec go (o: obj) : obj =
            match o with
            | null -> null
            | :? torch.Tensor as t -> box (f t)
            | _ ->
                match codecOf (o.GetType()) with
                | None -> o
                | Some codec -> codec.Build (codec.Names o) (codec.Parts o |> Array.map go)
        go value

/// ninjax's flatten and unflatten: a structured value (an F# record, tuple, array, list or map, a
/// State, a C# record or tuple) as named tensors and back. The Tree module keeps such a value in
/// the state this way.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Tree =

    /// The tensors of a value keyed by their path inside it (<c>mu/0</c>, <c>count</c>), and its
    /// structure. ArgumentException naming the part that is neither a tensor nor a known
    /// container, or whose name cannot be a key segment.
    let flatten (value: 'T) : State * TreeDef =
        let pairs, def = Containers.flatten (box value)
        State.ofValidPairs pairs, def

    /// Builds a value of a structure from tensors keyed as flatten keys them. ArgumentException
    /// listing the missing and unexpected keys when the entries do not fit the structure, or when
    /// the structure is not of type 'T.
    let unflatten<'T> (def: TreeDef) (entries: IReadOnlyDictionary<string, torch.Tensor>) : 'T =
        if isNull def then raise (ArgumentNullException("def"))
        if isNull entries then raise (ArgumentNullException("entries"))
        if not (typeof<'T>.IsAssignableFrom def.Type) then
            raise (ArgumentException(sprintf "The structure describes a %s, not a %s." def.Type.Name typeof<'T>.Name, "def"))
        let expected = HashSet<string>(def.Keys, StringComparer.Ordinal)
        let missing = def.Keys |> Seq.filter (fun k -> not (entries.ContainsKey k)) |> List.ofSeq
        let unexpected = entries.Keys |> Seq.filter (fun k -> not (expected.Contains k)) |> Seq.sort |> List.ofSeq
        if not missing.IsEmpty || not unexpected.IsEmpty then
            let list (xs: string list) = if xs.IsEmpty then "none" else String.Join(", ", xs)
            raise (
                ArgumentException(
                    sprintf "The entries do not fit the structure %O: missing keys %s; unexpected keys %s." def (list missing) (list unexpected),
                    "entries"
                )
            )
        Containers.unflatten def (fun k ->
            match entries.[k] with
            | null -> raise (ArgumentException(sprintf "The entry '%s' is null." k, "entries"))
            | t -> t)
        :?> 'T
