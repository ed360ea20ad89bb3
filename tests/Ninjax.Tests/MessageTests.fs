/// What F# callers read in messages: the F# form of the API, purified functions named after the
/// method they call, shapes as [32, 128]. The C# twins are pinned in
/// tests/Ninjax.CSharp.Tests/MessageTests.cs and ErrorTests.cs.
module Ninjax.Tests.MessageTests

open System
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A module whose methods draw random numbers and count.
type Sampler(name: string) =
    inherit Module(name)
    member this.Draw() = torch.rand([| 3L |], generator = Nj.rng ())
    member this.Shifted() = this.Draw() + 1.0f
    member this.Count() = this.Put("n", this.Get("n", fun () -> torch.zeros 1L) + 1.0f)

/// A top-level module without a name.
type Nameless() =
    inherit Module(null)

/// A module built without Sub or a name inside another's construction, on purpose.
type Careless(name: string) =
    inherit Module(name)
    let inner = Nameless()
    member _.Inner = inner

[<Tests>]
let tests =
    testList "messages" [
        testCase "a purified method is named after its type and method" <| fun () ->
            let sampler = Sampler "s"
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify sampler.Draw State.empty () |> ignore)
            Expect.stringStarts msg "Sampler.Draw asked for randomness but no seed was given" "named after the method"
            mentions msg [ "Nj.purifyWith (Options.seeded 0L) f"; "Nj.init 0L f" ]
            Expect.isFalse (msg.Contains "seed: 0") "no C# form"

        testCase "a lambda that calls one method of the caller's code is named after it" <| fun () ->
            let sampler = Sampler "s"
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify (fun (x: torch.Tensor) -> sampler.Draw() * x) State.empty (torch.ones 3L) |> ignore)
            Expect.stringStarts msg "Sampler.Draw asked for randomness" "named after the one method it calls"

        testCase "a lambda that calls several methods is named after where it is written" <| fun () ->
            let sampler = Sampler "s"
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify (fun () -> sampler.Draw() + sampler.Shifted()) State.empty () |> ignore)
            Expect.stringStarts msg "the function at line " "the F# closure's line"
            mentions msg [ "of MessageTests asked for randomness" ]

        testCase "a name given with Options.named wins" <| fun () ->
            let sampler = Sampler "s"
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purifyWith (Options.defaults |> Options.named "the sampler") sampler.Draw State.empty () |> ignore)
            Expect.stringStarts msg "the sampler asked for randomness" "the given name"

        testCase "nesting and loosening errors show the F# options" <| fun () ->
            let sampler = Sampler "s"
            let inner = Nj.purify sampler.Count
            let outer = Nj.purifyWith (Options.withCreate true Options.defaults |> Options.named "outer") (fun () -> inner State.empty ())
            let msg = throwsWith<InvalidOperationException> (fun () -> outer State.empty () |> ignore)
            Expect.stringStarts msg "Sampler.Count is called inside outer, another purified call." "both named"
            mentions msg [ "(Nj.purifyWith (Options.defaults |> Options.nested) f)" ]
            Expect.isFalse (msg.Contains "nested: true") "no C# form"
            let nested = Nj.purifyWith (Options.defaults |> Options.nested |> Options.withCreate true) sampler.Count
            let outer = Nj.purifyWith (Options.defaults |> Options.named "outer") (fun () -> nested State.empty ())
            let msg = throwsWith<InvalidOperationException> (fun () -> outer State.empty () |> ignore)
            Expect.equal msg "Sampler.Count asks for create=true inside outer, which has create=false; an inner call cannot loosen its flags." "loosen"

        testCase "missing and uncreatable keys show the F# way to create them" <| fun () ->
            let sampler = Sampler "s"
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify sampler.Count State.empty () |> ignore)
            mentions msg [ "'s/n'"; "shape [1]"; "in Sampler.Count"; "create=false, modify=true, ignore=false"; "Run Nj.init first or pass Options.withCreate true." ]
            let read = Nj.purify (fun () -> Nj.read "absent")
            let msg = throwsWith<Collections.Generic.KeyNotFoundException> (fun () -> read State.empty () |> ignore)
            mentions msg [ "'absent'"; "this.Get(name, fun () -> ...)"; "Options.withCreate true"; "Nj.init" ]

        testCase "donation errors name Options.donating" <| fun () ->
            let sampler = Sampler "s"
            let state = Nj.init 0L sampler.Count State.empty ()
            let train = Nj.purifyWith (Options.defaults |> Options.donating) sampler.Count
            let next, _ = train state ()
            let msg = throwsWith<InvalidOperationException> (fun () -> state.Count |> ignore)
            mentions msg [ "donated to Sampler.Count (Options.donating)" ]
            Expect.equal next.Count 1 "the new state"

        testCase "errors outside a call follow the calling code: F# here" <| fun () ->
            let msg = throwsWith<InvalidOperationException> (fun () -> (Sampler "s").Count() |> ignore)
            mentions msg [ "Wrap the function with Nj.purify or Nj.init" ]
            let parent = Sampler "parent"
            let msg = throwsWith<InvalidOperationException> (fun () -> parent.Sub("careless", fun () -> Careless "careless") |> ignore)
            mentions msg [ "this.Sub(\"name\", fun () -> ...)" ]
            Expect.isFalse (msg.Contains "() =>") "no C# form"
            let msg = throwsWith<ArgumentException> (fun () -> Nameless() |> ignore)
            mentions msg [ "pass name = \"model\""; "parent.Sub(\"name\", fun () -> ...)" ]

        testCase "shapes read as [32, 128]" <| fun () ->
            let dense = Dense(4, name = "dense")
            let state = Nj.init 0L dense.Forward State.empty (torch.ones(2L, 3L))
            let msg = throwsWith<ArgumentException> (fun () -> Nj.purify dense.Forward state (torch.ones(2L, 5L)) |> ignore)
            mentions msg [ "it got shape [2, 5]" ]
            Expect.stringContains (string state) "dense/w: [3, 4] Float32" "State.ToString"
    ]
