module Ninjax.Tests.TreeTests

open System
open System.Collections.Generic
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// An optimizer-state-like record: moments per parameter and a step count.
type Moments = { Mu: torch.Tensor[]; Nu: Map<string, torch.Tensor>; Count: torch.Tensor }

type Nested = { Pair: torch.Tensor * torch.Tensor; Inner: Moments; Items: torch.Tensor list }

type WithNumber = { W: torch.Tensor; Steps: int }

let private moments () =
    { Mu = [| torch.zeros(2L); torch.zeros(3L) |]
      Nu = Map [ "a", torch.ones(2L); "b", torch.ones(1L) ]
      Count = torch.zeros([||], dtype = torch.int64) }

/// A module that keeps optimizer-like state in a Tree and advances it.
type Stepper(name: string) as this =
    inherit Module(name)
    let slots = this.Sub("slots", fun () -> Tree<Moments>(fun () -> moments ()))
    member _.Slots = slots
    member _.Step() =
        let m = slots.Read()
        let next = { Mu = m.Mu |> Array.map (fun t -> t + 1.0f); Nu = m.Nu |> Map.map (fun _ t -> t * 2.0f); Count = m.Count + 1L }
        slots.Write next |> ignore
        next.Count

[<Tests>]
let tests =
    testList "tree" [
        testCase "flatten names a record's parts by field, a tuple's and an array's by position, a map's by key" <| fun () ->
            let value = { Pair = (vec [ 1f ], vec [ 2f ]); Inner = moments (); Items = [ vec [ 3f ]; vec [ 4f ] ] }
            let entries, def = Tree.flatten value
            let expected =
                [ "Inner/Count"; "Inner/Mu/0"; "Inner/Mu/1"; "Inner/Nu/a"; "Inner/Nu/b"; "Items/0"; "Items/1"; "Pair/0"; "Pair/1" ]
            Expect.equal (State.keys entries) expected "keys"
            Expect.equal (List.ofSeq def.Keys |> List.sort) expected "the structure lists the same keys"
            Expect.equal def.Type typeof<Nested> "the structure's type"
            let back: Nested = Tree.unflatten def entries
            expectIdentical (fst back.Pair) (vec [ 1f ]) "tuple part"
            expectIdentical back.Items.[1] (vec [ 4f ]) "list part"
            expectIdentical back.Inner.Nu.["b"] (torch.ones(1L)) "map part"
            Expect.isTrue (obj.ReferenceEquals(back.Inner.Mu.[0], value.Inner.Mu.[0])) "unflatten uses the given tensors"

        testCase "structures are equal when the containers and names are, whatever the shapes" <| fun () ->
            let _, a = Tree.flatten (moments ())
            let _, b = Tree.flatten { moments () with Mu = [| torch.zeros(7L); torch.zeros(1L) |] }
            let _, c = Tree.flatten { moments () with Mu = [| torch.zeros(2L) |] }
            let _, d = Tree.flatten { moments () with Nu = Map [ "a", torch.ones(2L); "c", torch.ones(1L) ] }
            Expect.equal a b "shapes are not part of the structure"
            Expect.notEqual a c "an array of another length"
            Expect.notEqual a d "a map with other keys"

        testCase "struct tuples, anonymous records, ResizeArray, Dictionary and State round-trip" <| fun () ->
            let roundTrip (value: 'T) (keys: string list) =
                let entries, def = Tree.flatten value
                Expect.equal (State.keys entries) keys (sprintf "keys of a %s" typeof<'T>.Name)
                let back: 'T = Tree.unflatten def entries
                let again, _ = Tree.flatten back
                expectSameState again entries (sprintf "%s round-trips" typeof<'T>.Name)
            roundTrip (struct (vec [ 1f ], vec [ 2f ])) [ "0"; "1" ]
            roundTrip {| Scale = vec [ 1f ]; Shift = vec [ 2f ] |} [ "Scale"; "Shift" ]
            roundTrip (ResizeArray [ vec [ 1f ] ]) [ "0" ]
            roundTrip (Dictionary(dict [ "x", vec [ 1f ]; "y", vec [ 2f ] ])) [ "x"; "y" ]
            roundTrip (State.ofSeq [ "mu/model/w", vec [ 1f ]; "count", vec [ 0f ] ]) [ "count"; "mu/model/w" ]
            roundTrip (vec [ 1f ], vec [ 2f ], vec [ 3f ], vec [ 4f ], vec [ 5f ], vec [ 6f ], vec [ 7f ], vec [ 8f ], vec [ 9f ])
                [ "0"; "1"; "2"; "3"; "4"; "5"; "6"; "7"; "8" ]

        testCase "what cannot be stored is named" <| fun () ->
            let msg = throwsWith<ArgumentException> (fun () -> Tree.flatten { W = vec [ 1f ]; Steps = 3 } |> ignore)
            mentions msg [ "'Steps'"; "Int32"; "0-d tensors" ]
            let msg = throwsWith<ArgumentException> (fun () -> Tree.flatten (vec [ 1f ]) |> ignore)
            mentions msg [ "bare tensor"; "Variable" ]
            let msg = throwsWith<ArgumentException> (fun () -> Tree.flatten { moments () with Count = null } |> ignore)
            mentions msg [ "'Count'"; "null" ]
            let msg = throwsWith<ArgumentException> (fun () -> Tree.flatten (Map [ "a b", vec [ 1f ] ]) |> ignore)
            mentions msg [ "'a b'"; "character ' '" ]
            let entries, def = Tree.flatten (moments ())
            let msg = throwsWith<ArgumentException> (fun () -> Tree.unflatten<Moments> def (State.remove "Count" entries) |> ignore)
            mentions msg [ "missing keys Count"; "unexpected keys none" ]
            let msg = throwsWith<ArgumentException> (fun () -> Tree.unflatten<WithNumber> def entries |> ignore)
            mentions msg [ "Moments"; "WithNumber" ]

        testCase "a Tree module keeps its value as entries under its path and round-trips writes" <| fun () ->
            let s = Stepper "opt"
            let state = Nj.init 0L s.Step State.empty ()
            Expect.equal
                (State.keys state)
                [ "opt/slots/Count"; "opt/slots/Mu/0"; "opt/slots/Mu/1"; "opt/slots/Nu/a"; "opt/slots/Nu/b" ]
                "entries named by their place in the value"
            expectIdentical state.["opt/slots/Count"] (torch.zeros([||], dtype = torch.int64)) "init keeps the made value"
            let step = Nj.purify s.Step
            let s1, c1 = step state ()
            let s2, c2 = step s1 ()
            Expect.equal [ c1.item<int64> (); c2.item<int64> () ] [ 1L; 2L ] "count"
            expectIdentical s2.["opt/slots/Mu/1"] (full [| 3L |] 2f) "moments advanced twice"
            expectIdentical s2.["opt/slots/Nu/a"] (full [| 2L |] 4f) "map entries advanced twice"
            // A fresh module object reads what the state holds.
            let fresh = Stepper "opt"
            let _, m = Nj.purify (fun () -> fresh.Slots.Read()) s2 ()
            expectIdentical m.Count (torch.tensor 2L) "a new module object reads the state"

        testCase "a Tree write must keep the structure, shapes and dtypes" <| fun () ->
            let tree = Tree<Moments>((fun () -> moments ()), "t")
            let state = Nj.init 0L (fun () -> tree.Read()) State.empty ()
            let write value = Nj.purify (fun () -> tree.Write value) state () |> ignore
            let msg = throwsWith<ArgumentException> (fun () -> write { moments () with Mu = [| torch.zeros(2L) |] })
            mentions msg [ "Tree 't'"; "'Mu'"; "[0, 1]"; "[0]"; "keep the structure" ]
            let msg = throwsWith<ArgumentException> (fun () -> write { moments () with Nu = Map [ "a", torch.ones(2L); "z", torch.ones(1L) ] })
            mentions msg [ "'Nu'"; "[a, b]"; "[a, z]" ]
            let msg = throwsWith<ArgumentException> (fun () -> write { moments () with Count = torch.zeros([| 2L |], dtype = torch.int64) })
            mentions msg [ "t/Count"; "shape" ]

        testCase "make runs again for a fresh module object, but what it did is discarded when the entries exist" <| fun () ->
            let calls = ref 0
            let make () =
                calls.Value <- calls.Value + 1
                (torch.randn([| 2L |], generator = Nj.rng ()), vec [ 0f ])
            let draw () = torch.rand([| 3L |], generator = Nj.rng ())
            let tree = Tree((fun () -> make ()), "t")
            let state = Nj.init 0L (fun () -> tree.Read()) State.empty ()
            Expect.equal calls.Value 1 "made once at init"
            let call (t: Tree<torch.Tensor * torch.Tensor>) =
                snd (Nj.purifyWith (Options.seeded 7L) (fun () -> let v = t.Read() in fst v, draw ()) state ())
            let (v1, r1) = call tree
            Expect.equal calls.Value 1 "a known structure with existing entries needs no make"
            let (v2, r2) = call (Tree((fun () -> make ()), "t"))
            Expect.equal calls.Value 2 "a fresh object makes a value to learn the structure"
            expectIdentical v2 v1 "both read the state"
            expectIdentical r2 r1 "the draws make took are discarded: later randomness is the same"

        testCase "reading a Tree whose entries are missing outside init names the key" <| fun () ->
            let tree = Tree<Moments>((fun () -> moments ()), "t")
            let msg = throwsWith<InvalidOperationException> (fun () -> Nj.purify (fun () -> tree.Read()) State.empty () |> ignore)
            mentions msg [ "t/Mu/0"; "create" ]
    ]
