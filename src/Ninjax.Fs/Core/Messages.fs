namespace Ninjax

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.Reflection
open System.Reflection.Emit
open System.Runtime.CompilerServices
open TorchSharp

/// The language of the code that calls Ninjax. Error messages show the API in the form that code
/// writes: <c>Options.nested</c> and <c>fun () -> ...</c> for F#, <c>nested: true</c> and
/// <c>() => ...</c> for C#.
[<RequireQualifiedAccess>]
type Language =
    /// F# code, using the F# API (Nj.purify, Options, Prog).
    | FSharp
    /// C# (or any other .NET language but F#), using the C# API (Ninjax.CSharp).
    | CSharp

/// Finds the language of the code that called into Ninjax by walking the stack. Only error paths
/// use it (a stack walk costs tens of microseconds); inside a purified call the call's options say
/// the language instead (Env.Language), which costs nothing.
module internal Caller =

    let private libraries = ConcurrentDictionary<Assembly, Language voption>()

    let private isLibraryName (name: string) =
        name = "Ninjax.Fs" || name = "FSharp.Core" || name = "TorchSharp" || name = "netstandard" || name = "mscorlib"
        || name.StartsWith("System.", StringComparison.Ordinal) || name = "System"
        || name.StartsWith("Microsoft.", StringComparison.Ordinal)

    /// The language of an assembly's code, or ValueNone for the libraries the walk skips (Ninjax.Fs,
    /// FSharp.Core, TorchSharp, the framework). Ninjax.CSharp is the C# facade: its callers write C#.
    let languageOf (assembly: Assembly) : Language voption =
        libraries.GetOrAdd(
            assembly,
            fun a ->
                let name = a.GetName().Name
                if isLibraryName name then ValueNone
                elif name = "Ninjax.CSharp" then ValueSome Language.CSharp
                elif name.StartsWith("FSI-ASSEMBLY", StringComparison.Ordinal)
                     || a.IsDefined(typeof<FSharpInterfaceDataVersionAttribute>, false) then
                    ValueSome Language.FSharp
                else ValueSome Language.CSharp
        )

    /// The language of the innermost code on the stack outside the libraries; F# when there is none.
    let fromStack () : Language =
        let frames = StackTrace(1, false).GetFrames()
        let mutable found = ValueNone
        let mutable i = 0
        while found.IsNone && i < frames.Length do
            match frames.[i].GetMethod() with
            | null -> ()
            | m when isNull m.DeclaringType -> ()
            | m -> found <- languageOf m.DeclaringType.Assembly
            i <- i + 1
        match found with
        | ValueSome language -> language
        | ValueNone -> Language.FSharp

/// The wording shared by every error message: code in the caller's language and shapes as
/// <c>[32, 128]</c>. See /work/coord/MESSAGES.md.
module internal Text =

    /// Picks the F# or the C# form of a piece of code for a message.
    let code (language: Language) (fsharp: string) (csharp: string) : string =
        match language with
        | Language.FSharp -> fsharp
        | Language.CSharp -> csharp

    /// Dimensions as <c>[32, 128]</c> (a scalar is <c>[]</c>), in both languages.
    let dims (dims: int64[]) : string =
        if isNull dims then "[]" else "[" + String.Join(", ", dims) + "]"

    /// A tensor's shape as <c>[32, 128]</c>, read with size(i) (Tensor.shape allocates).
    let shape (t: torch.Tensor) : string =
        if isNull (box t) then "null"
        elif t.IsInvalid then "(disposed tensor)"
        else
            let rank = int t.Dimensions
            let parts = Array.init rank (fun i -> string (t.size i))
            "[" + String.Join(", ", parts) + "]"

    /// A flag as an option of the caller's API: <c>create=true</c> (F#, as Options.withCreate
    /// sets it) or <c>create: true</c> (C#, the named argument).
    let flag (language: Language) (name: string) (value: bool) : string =
        let v = if value then "true" else "false"
        code language (name + "=" + v) (name + ": " + v)

    /// The name of a purified function that has none: tells how to give it one.
    let unnamed (language: Language) : string =
        code language "an unnamed purified function (name it with Options.named)" "an unnamed purified function (name it with name: \"...\")"

/// Default names for purified functions, so that messages say <c>GanModel.Train</c> rather than
/// "the purified function". Found once per function type or method when a function is purified
/// (never per call), from the delegate's method (C#) or the F# closure's Invoke; when that is a
/// lambda, from the one method of the caller's own code it calls, else from where it is defined.
module internal Naming =

    let private names = ConcurrentDictionary<MemberInfo, string>()

    let private isGenerated (t: Type) =
        not (isNull t) && (t.Name.Contains '<' || t.Name.Contains '@' || t.IsDefined(typeof<CompilerGeneratedAttribute>, false))

    /// A type's name without generic arity (<c>Foo`1</c> is <c>Foo</c>).
    let private plain (t: Type) =
        match t.Name.IndexOf '`' with
        | -1 -> t.Name
        | i -> t.Name.Substring(0, i)

    /// The innermost type of the caller's own code that a (compiler-generated) type lives in.
    let rec private outer (t: Type) =
        if isGenerated t && not (isNull t.DeclaringType) then outer t.DeclaringType else t

    // Operand sizes of every IL opcode, to walk a method body instruction by instruction.
    let private opcodes =
        lazy
            (let one = Array.zeroCreate<OpCode voption> 256
             let two = Array.zeroCreate<OpCode voption> 256
             for f in typeof<OpCodes>.GetFields(BindingFlags.Public ||| BindingFlags.Static) do
                 match f.GetValue null with
                 | :? OpCode as op ->
                     let v = int (uint16 op.Value)
                     if op.Size = 1 then one.[v &&& 0xff] <- ValueSome op else two.[v &&& 0xff] <- ValueSome op
                 | _ -> ()
             one, two)

    let private operandSize (op: OpCode) (il: byte[]) (at: int) =
        match op.OperandType with
        | OperandType.InlineNone -> 0
        | OperandType.ShortInlineBrTarget
        | OperandType.ShortInlineI
        | OperandType.ShortInlineVar -> 1
        | OperandType.InlineVar -> 2
        | OperandType.InlineI8
        | OperandType.InlineR -> 8
        | OperandType.InlineSwitch -> 4 + 4 * BitConverter.ToInt32(il, at)
        | _ -> 4

    /// The methods a method body calls (call, callvirt), in order.
    let private callees (m: MethodBase) : MethodBase list =
        let body = m.GetMethodBody()
        if isNull body then []
        else
            let il = body.GetILAsByteArray()
            let one, two = opcodes.Force()
            let typeArgs = if isNull m.DeclaringType || not m.DeclaringType.IsGenericType then null else m.DeclaringType.GetGenericArguments()
            let methodArgs = if m.IsGenericMethod then m.GetGenericArguments() else null
            let found = ResizeArray()
            let mutable i = 0
            let mutable ok = true
            while ok && i < il.Length do
                let op =
                    if il.[i] = 0xFEuy && i + 1 < il.Length then
                        i <- i + 2
                        two.[int il.[i - 1]]
                    else
                        i <- i + 1
                        one.[int il.[i - 1]]
                match op with
                | ValueNone -> ok <- false
                | ValueSome op ->
                    if op = OpCodes.Call || op = OpCodes.Callvirt then
                        try
                            found.Add(m.Module.ResolveMethod(BitConverter.ToInt32(il, i), typeArgs, methodArgs))
                        with _ -> ()
                    i <- i + operandSize op il i
            List.ofSeq found

    /// A method of the caller's own code worth naming a function after: not the libraries', not a
    /// property accessor or operator, not compiler-generated.
    let private isUsers (m: MethodBase) =
        not (isNull m.DeclaringType)
        && not m.IsSpecialName
        && not m.IsConstructor
        && not (isGenerated m.DeclaringType)
        && not (m.Name.Contains '<' || m.Name.Contains '@')
        && (match Caller.languageOf m.DeclaringType.Assembly with
            | ValueSome _ -> m.DeclaringType.Assembly.GetName().Name <> "Ninjax.CSharp"
            | ValueNone -> false)

    let private methodName (m: MethodBase) = plain (outer m.DeclaringType) + "." + m.Name

    /// The one method of the caller's code a lambda calls, if there is exactly one.
    let private onlyCallee (m: MethodBase) : string option =
        match callees m |> List.filter isUsers |> List.distinct with
        | [ single ] -> Some(methodName single)
        | _ -> None

    /// Where a C# lambda is defined: <c>the lambda in Program.Main</c>. Its method is named
    /// <c>&lt;Main&gt;b__0_0</c> (a local function: <c>&lt;Main&gt;g__Step|0_0</c>).
    let private lambdaSite (m: MethodBase) : string =
        let host = plain (outer m.DeclaringType)
        let name = m.Name
        let close = name.IndexOf '>'
        let enclosing = if name.StartsWith "<" && close > 1 then name.Substring(1, close - 1) else ""
        let localStart = name.IndexOf("g__", StringComparison.Ordinal)
        if localStart > 0 then
            let rest = name.Substring(localStart + 3)
            let bar = rest.IndexOf '|'
            host + "." + (if bar > 0 then rest.Substring(0, bar) else rest)
        elif enclosing = "Main" && host = "Program" || enclosing = "<Main>$" || name.StartsWith "<<Main>$>" then
            "the lambda in the top-level statements"
        elif enclosing = "" then "the lambda in " + host
        else "the lambda in " + host + "." + enclosing

    /// Where an F# closure is defined, from its compiled name (<c>Program+train@45</c>, named after
    /// the binding it is written in and its line): <c>the function at line 45 of Program</c>.
    let private closureSite (t: Type) : string =
        let name = t.Name
        match name.IndexOf '@' with
        | -1 -> "the function " + name
        | at ->
            let lineText = name.Substring(at + 1) |> Seq.takeWhile Char.IsDigit |> Array.ofSeq |> String
            let host = plain (outer t)
            if lineText = "" then "the function in " + host else sprintf "the function at line %s of %s" lineText host

    let private ofDelegateMethod (m: MethodInfo) : string =
        names.GetOrAdd(
            m,
            fun _ ->
                try
                    if not (m.Name.Contains '<') && not (isGenerated m.DeclaringType) then methodName m
                    else
                        match onlyCallee m with
                        | Some n -> n
                        | None -> lambdaSite m
                with _ -> null
        )

    let private ofClosure (t: Type) : string =
        names.GetOrAdd(
            t,
            fun _ ->
                try
                    let invokes =
                        t.GetMethods(BindingFlags.Public ||| BindingFlags.NonPublic ||| BindingFlags.Instance ||| BindingFlags.DeclaredOnly)
                        |> Array.filter (fun m -> m.Name = "Invoke")
                    let called = invokes |> Array.tryPick onlyCallee
                    match called with
                    | Some n -> n
                    | None -> if isGenerated t then closureSite t else plain t
                with _ -> null
        )

    let private isFunctionField (field: FieldInfo) =
        typeof<Delegate>.IsAssignableFrom field.FieldType
        || (let rec isFunc (t: Type) =
                not (isNull t) && ((t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<FSharpFunc<_, _>>) || isFunc t.BaseType)
            isFunc field.FieldType)

    let rec private ofValue (depth: int) (f: obj) : string =
        match f with
        | null -> null
        | :? Delegate as d -> ofDelegateMethod d.Method
        | _ ->
            let t = f.GetType()
            match Caller.languageOf t.Assembly with
            | ValueSome _ -> ofClosure t
            | ValueNone when depth < 3 ->
                // A library's wrapper (FuncConvert.FromFunc, say): named after the function it wraps.
                t.GetFields(BindingFlags.Public ||| BindingFlags.NonPublic ||| BindingFlags.Instance)
                |> Array.filter isFunctionField
                |> Array.tryPick (fun field ->
                    match ofValue (depth + 1) (try field.GetValue f with _ -> null) with
                    | null -> None
                    | name -> Some name)
                |> Option.toObj
            | ValueNone -> null

    /// The default name of a function given to Nj.purify / Nj.Pure: a delegate or an F# function
    /// value. Null when nothing sensible is found (messages then ask the caller to name it).
    let ofFunction (f: obj) : string = try ofValue 0 f with _ -> null
