module Ninjax.Tests.DigitsTests

open System
open System.IO
open Expecto
open TorchSharp
open Ninjax
open Ninjax.Tests.Helpers
open Digits.Program

let private settings kind epochs =
    { Settings.Default with Kind = kind; Epochs = epochs; BatchSize = 64; Seed = 3L; Plain = true; Quiet = true }

let private temp () = Path.Combine(Path.GetTempPath(), sprintf "ninjax-digits-%s.safetensors" (Guid.NewGuid().ToString "N"))

// Sequenced: with these trainings running side by side, a resumed run differed from the
// uninterrupted one in about 1 of 10 runs of the suite (never when sequenced); the cause is not
// found yet (docs/NOTES.md, 2026-11-29, lead).
[<Tests>]
let tests =
    testSequenced <| testList "digits" [
        testCase "the data loads with the documented sizes and ranges" <| fun () ->
            let train, test = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
            Expect.equal train.Images.shape [| 3823L; 64L |] "train images"
            Expect.equal test.Labels.shape [| 1797L |] "test labels"
            Expect.equal (train.Images.max().item<float32> ()) 1.0f "scaled to [0, 1]"
            Expect.sequenceEqual (train.Labels.bincount(null).data<int64>().ToArray()) [ 376L; 389L; 380L; 389L; 387L; 376L; 377L; 387L; 380L; 382L ] "class counts from the data's README"

        testCase "resuming after N epochs and training M more equals N+M in one go" <| fun () ->
            let full, fullAccuracy = run (settings Mlp 2)
            let checkpoint = temp ()
            try
                let _, _ = run { settings Mlp 2 with StopAfter = Some 1; Save = Some checkpoint }
                let resumed, resumedAccuracy = run { settings Mlp 2 with Resume = Some checkpoint }
                expectSameState resumed full "same parameters, moments and step count"
                Expect.equal resumedAccuracy fullAccuracy "same accuracy"
            finally
                File.Delete checkpoint

        testCase "the CNN resumes exactly too: the augmentation and the dropout masks depend on the step, not on the process" <| fun () ->
            let small = { settings Cnn 2 with BatchSize = 256 }
            let full, _ = run small
            let checkpoint = temp ()
            try
                let _, _ = run { small with StopAfter = Some 1; Save = Some checkpoint }
                let resumed, _ = run { small with Resume = Some checkpoint }
                expectSameState resumed full "same state"
            finally
                File.Delete checkpoint

        testCase "a checkpoint of a run of another length is refused: its schedule would not continue" <| fun () ->
            let checkpoint = temp ()
            try
                let _, _ = run { settings Mlp 3 with StopAfter = Some 1; Save = Some checkpoint }
                let msg = throwsWith<ArgumentException> (fun () -> run { settings Mlp 2 with Resume = Some checkpoint } |> ignore)
                mentions msg [ checkpoint; "3 epochs"; "--epochs 3" ]
            finally
                File.Delete checkpoint

        testCase "the saved classifier predicts as the trained one did" <| fun () ->
            let checkpoint = temp ()
            try
                let _, accuracy = run { settings Mlp 1 with Save = Some checkpoint }
                let classify = loadClassifier checkpoint
                let _, test = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
                let predicted = classify.Invoke test.Images
                let loaded = float (predicted.eq(test.Labels).sum().item<int64> ()) / float (test.Labels.size 0)
                Expect.equal loaded accuracy "same test accuracy"
            finally
                File.Delete checkpoint

        testCase "the augmentation's map: identity, whole-pixel moves, and a fresh draw per generator" <| fun () ->
            let image = torch.arange(1.0f, 65.0f).view(1L, 64L)
            let scalar (v: float) = torch.tensor([| float32 v |])
            let moved angle scale dx dy = (Digits.Data.transform (scalar angle) (scalar scale) (scalar dx) (scalar dy) image).view(8L, 8L)
            let grid = image.view(8L, 8L)
            Expect.isTrue ((moved 0.0 1.0 0.0 0.0).allclose(grid, 1e-5, 1e-5)) "the identity leaves the image as it is"
            let down = moved 0.0 1.0 0.0 1.0
            Expect.isTrue ((down.narrow(0L, 0L, 1L)).allclose(torch.zeros(1L, 8L), 0.0, 1e-5)) "the top row is new"
            Expect.isTrue ((down.narrow(0L, 1L, 7L)).allclose(grid.narrow(0L, 0L, 7L), 1e-5, 1e-5)) "the rest moved down a pixel"
            let left = moved 0.0 1.0 -1.0 0.0
            Expect.isTrue ((left.narrow(1L, 7L, 1L)).allclose(torch.zeros(8L, 1L), 0.0, 1e-5)) "the right column is new"
            Expect.isTrue ((left.narrow(1L, 0L, 7L)).allclose(grid.narrow(1L, 1L, 7L), 1e-5, 1e-5)) "the rest moved left a pixel"
            // A quarter turn maps the top row onto the right column (clockwise on screen, y down).
            let turned = moved (Math.PI / 2.0) 1.0 0.0 0.0
            Expect.isTrue ((turned.narrow(1L, 7L, 1L).flatten()).allclose(grid.narrow(0L, 0L, 1L).flatten(), 1e-4, 1e-4)) "a quarter turn"
            let train, _ = Digits.Data.loadBoth (Digits.Data.defaultFolder ())
            let draw seed = (use g = new torch.Generator(uint64 seed) in Digits.Data.augmented g train).Images
            expectIdentical (draw 7L) (draw 7L) "the same generator seed draws the same images"
            Expect.isFalse ((draw 7L).allclose(draw 8L, 0.0, 0.0)) "another seed draws others"
            Expect.isFalse ((draw 7L).allclose(train.Images, 0.0, 0.0)) "the images change"

        testCase "two runs with the same seed agree to every digit" <| fun () ->
            let a, accA = run (settings Cnn 1)
            let b, accB = run (settings Cnn 1)
            Expect.equal accA accB "accuracy"
            expectSameState a b "state"

        testCase "resuming from a checkpoint of another model lists every mismatch" <| fun () ->
            let checkpoint = temp ()
            try
                let _, _ = run { settings Mlp 1 with Save = Some checkpoint }
                let msg = throwsWith<InvalidOperationException> (fun () -> run { settings Cnn 2 with Resume = Some checkpoint } |> ignore)
                mentions msg [ checkpoint; "model/conv1/w"; "model/dense0/w" ]
            finally
                File.Delete checkpoint
    ]
