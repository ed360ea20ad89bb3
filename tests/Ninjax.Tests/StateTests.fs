module Ninjax.Tests.StateTests

open System
open System.Collections.Generic
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

[<Tests>]
let tests =
    testList "state" [
        testCase "well-formed keys are accepted" <| fun () ->
            for k in [ "w"; "model/h1/w"; "_x1/Y_2"; "a/b/c/d" ] do
                Expect.isNone (Key.problem k) k

        testCase "malformed keys are rejected naming the key" <| fun () ->
            for k in [ "a//b"; "a/"; "/a"; "a-b"; "a b"; "model/h1.w" ] do
                let msg = throwsWith<ArgumentException> (fun () -> Key.validate k)
                mentions msg [ k ]
            throwsWith<ArgumentException> (fun () -> Key.validate "") |> ignore

        testCase "State.ofSeq rejects bad and repeated keys" <| fun () ->
            let msg = throwsWith<ArgumentException> (fun () -> State.ofSeq [ "a/b", vec [ 1f ]; "a/b", vec [ 2f ] ] |> ignore)
            mentions msg [ "a/b" ]
            let msg = throwsWith<ArgumentException> (fun () -> State.ofSeq [ "a.b", vec [ 1f ] ] |> ignore)
            mentions msg [ "a.b" ]

        testCase "a state reads as a read-only dictionary" <| fun () ->
            let a, b = vec [ 1f ], vec [ 2f ]
            let s = State.ofSeq [ "m/b", b; "m/a", a ]
            let d = s :> IReadOnlyDictionary<string, torch.Tensor>
            Expect.equal d.Count 2 "count"
            Expect.sequenceEqual d.Keys [ "m/a"; "m/b" ] "keys in order"
            Expect.isTrue (obj.ReferenceEquals(d.["m/a"], a)) "indexer"
            let mutable t = null
            Expect.isTrue (d.TryGetValue("m/b", &t)) "try get"
            Expect.isFalse (d.ContainsKey "m/c") "absent"
            let msg = throwsWith<KeyNotFoundException> (fun () -> d.["m/c"] |> ignore)
            mentions msg [ "m/c" ]

        testCase "states build from dictionaries and never change" <| fun () ->
            let dict = Dictionary<string, torch.Tensor>()
            dict.["x/y"] <- vec [ 3f ]
            let s = State.ofDictionary dict
            let s2 = State.add "x/z" (vec [ 4f ]) s
            Expect.equal s.Count 1 "original unchanged"
            Expect.equal s2.Count 2 "new state has both"
            Expect.equal (State.keys (State.under "x" s2)) [ "x/y"; "x/z" ] "under prefix"
            Expect.equal (State.keys (State.under "x/y" s2)) [ "x/y" ] "a key matches itself"
    ]
