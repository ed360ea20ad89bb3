module Ninjax.Tests.SummaryTests

open System
open System.Text.RegularExpressions
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers

/// A state with entries of several dtypes, a scalar, a zero-size entry and a top-level key.
let mixed () =
    State.ofSeq [
        "model/h1/w", torch.zeros(3L, 4L)                                  // 12 params, 48 bytes
        "model/h1/b", torch.zeros(4L)                                      //  4 params, 16 bytes
        "model/h2/w", torch.zeros([| 4L; 2L |], dtype = torch.float64)     //  8 params, 64 bytes
        "model/bias", torch.zeros([| 2L |], dtype = torch.float16)         //  2 params,  4 bytes
        "opt/count", torch.tensor 1L                                        //  1 param,   8 bytes
        "opt/mask", torch.zeros([| 2L; 0L |], dtype = torch.ScalarType.Bool) // 0 params,  0 bytes
        "top", torch.zeros([| 5L |], dtype = torch.uint8) ]                 //  5 params,  5 bytes

/// Totals without a model: every element counted, none of them classified as a parameter.
let sizes entries elements bytes = { Entries = entries; Elements = elements; Parameters = 0L; Bytes = bytes }

[<Tests>]
let summaryTests =
    testList "summary" [
        testCase "totals per entry, per module and overall match hand-computed numbers" <| fun () ->
            let s = mixed ()
            Expect.equal (Summary.totals s) (sizes 7 32L 145L) "overall"
            Expect.equal
                (Summary.rows s)
                [ ModuleRow("model", 0, sizes 4 26L 132L)
                  EntryRow("model/bias", 1, [| 2L |], torch.ScalarType.Float16, EntryKind.Unclassified, sizes 1 2L 4L)
                  ModuleRow("model/h1", 1, sizes 2 16L 64L)
                  EntryRow("model/h1/b", 2, [| 4L |], torch.ScalarType.Float32, EntryKind.Unclassified, sizes 1 4L 16L)
                  EntryRow("model/h1/w", 2, [| 3L; 4L |], torch.ScalarType.Float32, EntryKind.Unclassified, sizes 1 12L 48L)
                  ModuleRow("model/h2", 1, sizes 1 8L 64L)
                  EntryRow("model/h2/w", 2, [| 4L; 2L |], torch.ScalarType.Float64, EntryKind.Unclassified, sizes 1 8L 64L)
                  ModuleRow("opt", 0, sizes 2 1L 8L)
                  EntryRow("opt/count", 1, [||], torch.ScalarType.Int64, EntryKind.Unclassified, sizes 1 1L 8L)
                  EntryRow("opt/mask", 1, [| 2L; 0L |], torch.ScalarType.Bool, EntryKind.Unclassified, sizes 1 0L 0L)
                  EntryRow("top", 0, [| 5L |], torch.ScalarType.Byte, EntryKind.Unclassified, sizes 1 5L 5L) ]
                "rows"

        testCase "the quickstart model's summary: 21,123 parameters in 84,492 bytes" <| fun () ->
            let model = ScenarioTests.MyModel(3)
            // The parameters only (the model's Loss creates them; Train would add the optimizer's state).
            let state = Nj.init 0L model.Loss State.empty (torch.ones(4L, 32L), torch.ones(4L, 3L))
            // h1: 32*128 + 128; h2: 128*128 + 128; h3: 128*3; bias: 3.
            let h1, h2, h3 = 32L * 128L + 128L, 128L * 128L + 128L, 128L * 3L
            Expect.equal (Summary.totals state) (sizes 6 (h1 + h2 + h3 + 3L) ((h1 + h2 + h3 + 3L) * 4L)) "overall"
            Expect.equal (h1 + h2 + h3 + 3L) 21123L "hand total"
            let modules = Summary.rows state |> List.choose (function ModuleRow(p, _, t) -> Some(p, t) | _ -> None)
            Expect.equal
                modules
                [ "model", sizes 6 21123L 84492L
                  "model/h1", sizes 2 h1 (h1 * 4L)
                  "model/h2", sizes 2 h2 (h2 * 4L)
                  "model/h3", sizes 1 h3 (h3 * 4L) ]
                "module totals"

        testCase "the trained quickstart model: 21,123 trainable parameters beside Adam's state" <| fun () ->
            let model = ScenarioTests.MyModel(3)
            let state = Nj.init 0L model.Train State.empty (torch.ones(4L, 32L), torch.ones(4L, 3L))
            let totals = Summary.totalsOf model state
            Expect.equal totals.Parameters 21123L "trainable parameters"
            // Two moments per parameter, Adam's count and learning rate, the fingerprint of its targets.
            Expect.equal totals.Elements (3L * 21123L + 3L) "every element"
            let lines = (Summary.renderOf model state).Split '\n' |> Array.map (fun l -> l.TrimEnd '\r')
            Expect.equal
                lines.[lines.Length - 1]
                "21 entries: 21,123 trainable parameters (82.5 KiB); 42,249 other values (165.0 KiB): 0 in buffers, 42,249 optimizer state, 0 other"
                "last line"
            Expect.equal (lines.[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)) [| "Name"; "Shape"; "Dtype"; "Kind"; "Parameters"; "Other"; "Bytes" |] "header"
            let line name = lines |> Array.find (fun l -> l.TrimStart().StartsWith(name + " "))
            Expect.equal (line "h1").[.. 9] "  h1      " "a module line"
            Expect.stringContains (line "model") "21,123  42,249  253,500" "the model: its parameters, and its optimizer's state as other values"
            Expect.stringContains (line "count") "Int64    optimizer" "the count's kind"
            Expect.equal (line "bias") "  bias             [3]         Float32  parameter           3               12" "the bias: a parameter"

        testCase "render draws the tree with aligned columns and a total line" <| fun () ->
            let lines = (Summary.render (mixed ())).Split '\n' |> Array.map (fun l -> l.TrimEnd '\r')
            Expect.equal lines.[0] "Name     Shape   Dtype    Elements  Bytes" "header"
            Expect.equal lines.[2] "model                           26    132" "module line"
            Expect.equal lines.[4] "  h1                            16     64" "submodule line"
            Expect.equal lines.[6] "    w    [3, 4]  Float32        12     48" "entry line"
            Expect.equal lines.[10] "  count  []      Int64           1      8" "scalar line"
            Expect.equal lines.[lines.Length - 2] "Total                           32    145" "total line"
            Expect.equal lines.[lines.Length - 1] "7 entries, 32 elements, 145 B (pass the model, Summary.renderOf model state, to count trainable parameters apart)" "last line"
            Expect.equal lines.Length 16 "11 rows, header, two rules, total and summary lines"

        testCase "formatBytes picks binary units" <| fun () ->
            Expect.equal (Summary.formatBytes 0L) "0 B" "zero"
            Expect.equal (Summary.formatBytes 1023L) "1023 B" "bytes"
            Expect.equal (Summary.formatBytes 84492L) "82.5 KiB" "KiB"
            Expect.equal (Summary.formatBytes (3L * 1024L * 1024L * 1024L / 2L)) "1.5 GiB" "GiB"

        testCase "an empty state has zero totals and no rows" <| fun () ->
            Expect.equal (Summary.totals State.empty) Summary.zero "totals"
            Expect.equal (Summary.rows State.empty) [] "rows"
            Expect.stringContains (Summary.render State.empty) "0 entries, 0 elements, 0 B" "render"
    ]

[<Tests>]
let stateOpsTests =
    testList "state ops" [
        testCase "select by prefixes and by regular expression" <| fun () ->
            let s = mixed ()
            Expect.equal (StateOps.selectPrefixes [ "model/h1"; "opt" ] s |> State.keys) [ "model/h1/b"; "model/h1/w"; "opt/count"; "opt/mask" ] "prefixes"
            Expect.equal (StateOps.selectPrefixes [ "model/h" ] s |> State.keys) [] "a prefix is whole segments"
            Expect.equal (StateOps.selectPattern "/w$" s |> State.keys) [ "model/h1/w"; "model/h2/w" ] "pattern"
            Expect.equal (StateOps.selectRegex (Regex "^(top|opt/c)") s |> State.keys) [ "opt/count"; "top" ] "regex"
            let msg = throwsWith<ArgumentException> (fun () -> StateOps.selectPattern "model/(" s |> ignore)
            mentions msg [ "'model/('" ]

        testCase "mergeDisjoint joins disjoint states and lists every shared key otherwise" <| fun () ->
            let a = State.ofSeq [ "a/x", vec [ 1.0f ]; "a/y", vec [ 2.0f ] ]
            let b = State.ofSeq [ "b/x", vec [ 3.0f ] ]
            Expect.equal (StateOps.mergeDisjoint a b |> State.keys) [ "a/x"; "a/y"; "b/x" ] "disjoint"
            let c = State.ofSeq [ "a/x", vec [ 0.0f ]; "a/y", vec [ 0.0f ]; "c", vec [ 0.0f ] ]
            let msg = throwsWith<ArgumentException> (fun () -> StateOps.mergeDisjoint a c |> ignore)
            mentions msg [ "'a/x'"; "'a/y'" ]
            Expect.isFalse (msg.Contains "'c'") "only shared keys are listed"

        testCase "mergeWith resolves shared keys with a function" <| fun () ->
            let a = State.ofSeq [ "x", vec [ 1.0f ]; "y", vec [ 2.0f ] ]
            let b = State.ofSeq [ "x", vec [ 10.0f ]; "z", vec [ 3.0f ] ]
            let m = StateOps.mergeWith (fun _ l r -> l + r) a b
            Expect.equal (State.keys m) [ "x"; "y"; "z" ] "keys"
            expectIdentical m.["x"] (vec [ 11.0f ]) "resolved"
            expectIdentical m.["y"] (vec [ 2.0f ]) "left only"
            expectIdentical m.["z"] (vec [ 3.0f ]) "right only"

        testCase "diff lists added, removed and changed keys with the largest change per key and overall" <| fun () ->
            let before =
                State.ofSeq [ "w", vec [ 1.0f; 2.0f; 3.0f ]
                              "b", vec [ 0.0f; 0.0f ]
                              "same", vec [ 5.0f; Single.NaN ]
                              "count", torch.tensor 3L
                              "mask", torch.tensor([| true; false |])
                              "reshaped", torch.zeros(2L, 3L)
                              "retyped", torch.zeros(2L)
                              "gone", vec [ 1.0f ] ]
            let after =
                State.ofSeq [ "w", vec [ 1.0f; 2.5f; 1.0f ]
                              "b", vec [ 0.0f; Single.NaN ]
                              "same", vec [ 5.0f; Single.NaN ]
                              "count", torch.tensor 10L
                              "mask", torch.tensor([| true; true |])
                              "reshaped", torch.zeros(3L, 2L)
                              "retyped", torch.zeros([| 2L |], dtype = torch.float64)
                              "new", vec [ 1.0f ] ]
            let d = StateOps.diff before after
            Expect.equal d.Added [ "new" ] "added"
            Expect.equal d.Removed [ "gone" ] "removed"
            Expect.equal d.Unchanged [ "same" ] "unchanged (NaN in the same place on both sides counts as equal)"
            Expect.equal
                d.Changed
                [ "b", ValuesChanged Double.PositiveInfinity
                  "count", ValuesChanged 7.0
                  "mask", ValuesChanged 1.0
                  "reshaped", ShapeChanged([| 2L; 3L |], [| 3L; 2L |])
                  "retyped", DtypeChanged(torch.ScalarType.Float32, torch.ScalarType.Float64)
                  "w", ValuesChanged 2.0 ]
                "changed"
            Expect.equal d.MaxAbsChange Double.PositiveInfinity "overall, with a NaN appearing"
            let d2 = StateOps.diff (State.remove "b" before) (State.remove "b" after)
            Expect.equal d2.MaxAbsChange 7.0 "overall"
            Expect.isFalse d2.IsEmpty "not empty"

        testCase "diff of a state with itself is empty" <| fun () ->
            let d = StateOps.diff (mixed ()) (mixed ())
            Expect.isTrue d.IsEmpty "empty"
            Expect.equal d.Unchanged (State.keys (mixed ())) "all unchanged"
            Expect.equal d.MaxAbsChange 0.0 "no change"

        testCase "diff after a training step changes exactly the parameters it trained" <| fun () ->
            let model = ScenarioTests.MyModel(3, lr = 0.1)
            let x, y = torch.ones(4L, 5L), torch.ones(4L, 3L)
            let s0 = Nj.init 0L model.Train State.empty (x, y)
            let s1, _ = Nj.purify model.Train s0 (x, y)
            let d = StateOps.diff s0 s1
            Expect.equal d.Added [] "no new keys"
            Expect.equal d.Removed [] "no removed keys"
            for k, c in d.Changed do
                let expected = (s1.[k].to_type(torch.float64) - s0.[k].to_type(torch.float64)).abs().max().item<float> ()
                match c with
                | ValuesChanged m -> Expect.floatClose Accuracy.high m expected (sprintf "max change of %s" k)
                | other -> failtestf "%s: unexpected %A" k other
            Expect.isGreaterThan d.MaxAbsChange 0.0 "something moved"
            Expect.equal d.MaxAbsChange (d.Changed |> List.map (function _, ValuesChanged m -> m | _ -> 0.0) |> List.max) "overall is the largest"

        testCase "toDevice moves every entry and keeps those already there" <| fun () ->
            let s = mixed ()
            let same = StateOps.toDevice torch.CPU s
            for k in State.keys s do
                Expect.isTrue (obj.ReferenceEquals(same.[k], s.[k])) (sprintf "%s kept as it is" k)
            // The meta device holds shapes and dtypes without data; it stands in for an accelerator.
            let meta = StateOps.toDevice (torch.Device "meta") s
            for k in State.keys s do
                Expect.equal meta.[k].device_type DeviceType.META (sprintf "%s moved" k)
                Expect.equal meta.[k].shape s.[k].shape (sprintf "%s shape" k)
                Expect.equal meta.[k].dtype s.[k].dtype (sprintf "%s dtype" k)
                Expect.equal s.[k].device_type DeviceType.CPU (sprintf "%s original untouched" k)

        testCase "castFloating casts floating entries and leaves integer, bool and complex ones alone" <| fun () ->
            let s =
                State.merge (mixed ()) (State.ofSeq [ "z", torch.ones([| 2L |], dtype = torch.complex64); "v", vec [ 1.5f; -2.25f ] ])
            let c = StateOps.castFloating torch.ScalarType.BFloat16 s
            for k in State.keys s do
                let before, after = s.[k], c.[k]
                if before.is_floating_point () then
                    Expect.equal after.dtype torch.ScalarType.BFloat16 (sprintf "%s cast" k)
                    expectIdentical (after.``to`` before.dtype) before (sprintf "%s values (exact in bf16)" k)
                else
                    Expect.isTrue (obj.ReferenceEquals(after, before)) (sprintf "%s left alone" k)
            let msg = throwsWith<ArgumentException> (fun () -> StateOps.castFloating torch.ScalarType.Int32 s |> ignore)
            mentions msg [ "Int32"; "floating-point" ]
    ]
