module Ninjax.Tests.StateTests

open System
open System.Collections.Generic
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A recipe for a KeySet: keys added and joins of two recipes, as a program's worlds build them.
type KeySetRecipe =
    | Added of string list
    | Joined of KeySetRecipe * KeySetRecipe
    | AddedTo of KeySetRecipe * string list

/// Builds a KeySet and the F# set it must equal.
let rec build (recipe: KeySetRecipe) : KeySet * Set<string> =
    match recipe with
    | Added keys -> List.fold (fun (s: KeySet) k -> s.Add k) KeySet.empty keys, Set.ofList keys
    | Joined (a, b) ->
        let sa, ma = build a
        let sb, mb = build b
        KeySet.union sa sb, Set.union ma mb
    | AddedTo (r, keys) ->
        let s, m = build r
        List.fold (fun (s: KeySet) k -> s.Add k) s keys, Set.union m (Set.ofList keys)

let private genKeys = Gen.listOf (Gen.elements [ "m/a"; "m/b"; "m/a/c"; "m/ab"; "n"; "m"; "model/h1/w" ])

let rec private genRecipe (size: int) : Gen<KeySetRecipe> =
    if size <= 1 then Gen.map Added genKeys
    else
        Gen.oneof [ Gen.map Added genKeys
                    Gen.map2 (fun a b -> Joined(a, b)) (genRecipe (size / 2)) (genRecipe (size / 2))
                    Gen.map2 (fun r ks -> AddedTo(r, ks)) (genRecipe (size - 1)) genKeys ]

[<Tests>]
let tests =
    testList "state" [
        testCase "a KeySet holds exactly the keys added and joined, as an F# set would" <| fun () ->
            let agrees (recipe: KeySetRecipe) =
                let s, expected = build recipe
                Expect.equal (KeySet.toSet s) expected "as a set"
                Expect.equal s.Count expected.Count "count"
                Expect.equal s.IsEmpty expected.IsEmpty "empty"
                Expect.sequenceEqual (List.ofSeq s) (Set.toList expected) "enumerated distinct, in ordinal order"
                for k in [ "m/a"; "m/b"; "m/a/c"; "m/ab"; "n"; "m"; "model/h1/w"; "absent" ] do
                    Expect.equal (s.Contains k) (expected.Contains k) k
            Check.One(Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true), Prop.forAll (Arb.fromGen (Gen.sized (fun n -> genRecipe (min n 12)))) agrees)

        testCase "a KeySet stays a set through long logs of repeats and joins, and never changes once made" <| fun () ->
            let keys = [| for i in 0..9 -> sprintf "m/k%d" i |]
            let mutable s = KeySet.empty
            let first = s.Add "m/k0"
            for i in 0..4999 do
                s <- s.Add keys.[i % keys.Length]
            Expect.equal s.Count 10 "ten keys after 5,000 adds"
            let mutable joined = s
            for _ in 1..40 do
                joined <- KeySet.union joined joined
            Expect.equal (KeySet.toSet joined) (Set.ofArray keys) "40 self-joins (2^40 log entries if never collected)"
            Expect.isTrue ((joined.Add "x").Contains "x") "adds after collecting"
            Expect.isFalse (joined.Contains "x") "the set added to is unchanged"
            Expect.equal (KeySet.toSet first) (set [ "m/k0" ]) "an earlier set is unchanged"
            Expect.isTrue KeySet.empty.IsEmpty "the empty set stays empty"

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
