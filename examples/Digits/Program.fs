/// Trains a digit classifier on the UCI optical digits and prints its test accuracy.
module Digits.Program

open System
open System.Diagnostics
open Argu
open Spectre.Console
open TorchSharp
open Ninjax
open Digits.Data
open Digits.Models

type ModelKind =
    | Mlp
    | Cnn

type Arguments =
    | Model of ModelKind
    | Epochs of int
    | Batch_Size of int
    | Learning_Rate of float
    | Seed of int64
    | Save of path: string
    | Resume of path: string
    | Data of folder: string
    | Threads of count: int
    | Plain
    | Quiet

    interface IArgParserTemplate with
        member this.Usage =
            match this with
            | Model _ -> "the model: cnn (two 3x3 convolutions and a dense head) or mlp (64-256-256-10). Default: cnn."
            | Epochs _ -> "passes over the training set. Default: 20."
            | Batch_Size _ -> "images per step. Default: 32."
            | Learning_Rate _ -> "Adam's learning rate. Default: 0.001."
            | Seed _ -> "the seed for initialisation and shuffling. Default: 0."
            | Save _ -> "write a checkpoint (state, epoch) to this file at the end."
            | Resume _ -> "continue from a checkpoint written by --save, with its optimizer state."
            | Data _ -> "the folder holding optdigits.tra and optdigits.tes. Default: data/optdigits of this checkout."
            | Threads _ -> "TorchSharp's intra-op threads. Default: 1 (these models are small; more threads only contend on a busy machine)."
            | Plain -> "print plain progress lines even in a terminal."
            | Quiet -> "print only the final test accuracy."

/// The settings of one training run.
type Settings =
    { Kind: ModelKind; Epochs: int; BatchSize: int; LearningRate: float; Seed: int64
      Save: string option; Resume: string option; DataFolder: string; Threads: int; Plain: bool; Quiet: bool }

let settingsOf (results: ParseResults<Arguments>) =
    let settings =
        { Kind = results.GetResult(Model, defaultValue = Cnn)
          Epochs = results.GetResult(Epochs, defaultValue = 20)
          BatchSize = results.GetResult(Batch_Size, defaultValue = 32)
          LearningRate = results.GetResult(Learning_Rate, defaultValue = 1e-3)
          Seed = results.GetResult(Seed, defaultValue = 0L)
          Save = results.TryGetResult Save
          Resume = results.TryGetResult Resume
          DataFolder = results.TryGetResult Data |> Option.defaultWith Data.defaultFolder
          Threads = results.GetResult(Threads, defaultValue = 1)
          Plain = results.Contains Plain || Console.IsOutputRedirected
          Quiet = results.Contains Quiet }
    if settings.Threads <= 0 then raise (ArgumentException(sprintf "--threads must be positive; it was %d." settings.Threads))
    if settings.Epochs < 0 then raise (ArgumentException(sprintf "--epochs must be zero or more; it was %d." settings.Epochs))
    if settings.BatchSize <= 0 then raise (ArgumentException(sprintf "--batch-size must be positive; it was %d." settings.BatchSize))
    if not (settings.LearningRate > 0.0) then raise (ArgumentException(sprintf "--learning-rate must be positive; it was %g." settings.LearningRate))
    settings

/// The model; data-parallel across the ranks of comm when it is not null.
let makeModel (settings: Settings) (comm: Communicator) : Classifier =
    match settings.Kind with
    | Mlp -> Models.Mlp([ 256; 256 ], settings.LearningRate, "model", ?comm = Option.ofObj comm)
    | Cnn -> Models.Cnn(16, settings.LearningRate, "model", ?comm = Option.ofObj comm)

/// The job's communicator when the trainer runs under mpirun, else null (one process).
let communicator () : Communicator = if Communicator.IsLaunched then Communicator.World else null

/// The fraction of a split a model classifies correctly.
let accuracy (model: Classifier) (state: State) (split: Split) : float =
    let correct = Nj.purify model.Correct
    let total = batches 0L 512 split |> Seq.sumBy (fun (x, y) -> (snd (correct state (x, y))).item<int64> ())
    float total / float split.Labels.shape.[0]

/// One epoch of training: the new state, the mean loss and the training accuracy.
let runEpoch (train: State -> torch.Tensor * torch.Tensor -> State * StepMetrics) (settings: Settings) (epoch: int) (state: State) (split: Split) (onStep: unit -> unit) =
    let mutable state = state
    let mutable lossSum = 0.0
    let mutable correct = 0L
    let mutable steps = 0
    // The order depends on the seed and the epoch only, so a resumed run sees the same batches.
    for x, y in batches (settings.Seed * 1000L + int64 epoch) settings.BatchSize split do
        let next, metrics = train state (x, y)
        state <- next
        lossSum <- lossSum + float (metrics.Loss.item<float32> ())
        correct <- correct + metrics.Correct.item<int64> ()
        steps <- steps + 1
        onStep ()
    state, lossSum / float steps, float correct / float split.Labels.shape.[0]

/// Trains as the settings say and returns the final state and the test accuracy. Under
/// mpirun the ranks train data-parallel: each takes its share of every batch, the optimizer
/// averages their gradients, and only rank 0 prints and saves.
let run (settings: Settings) : State * float =
    let comm = communicator ()
    // mpirun relays output through its own pipes, where a live progress bar renders badly.
    let settings = if isNull comm then settings else { settings with Plain = true }
    let root = isNull comm || comm.IsRoot
    let say fmt = Printf.kprintf (fun line -> if root && not settings.Quiet then printfn "%s" line) fmt
    torch.set_num_threads settings.Threads
    let clock = Stopwatch.StartNew()
    let trainSplit, testSplit = Data.loadBoth settings.DataFolder
    let images = trainSplit.Labels.size 0
    let ranks = if isNull comm then 1L else int64 comm.Size
    if ranks > 1L && images % int64 settings.BatchSize <> 0L && images % int64 settings.BatchSize < ranks then
        raise (ArgumentException(sprintf "--batch-size %d leaves a last batch of %d images, too few to share among %d ranks; choose another batch size." settings.BatchSize (images % int64 settings.BatchSize) ranks))
    let model = makeModel settings comm
    let sample = trainSplit.Images.narrow(0L, 0L, 2L), trainSplit.Labels.narrow(0L, 0L, 2L)
    let initial = Nj.init settings.Seed model.Train State.empty sample
    let state, firstEpoch =
        match settings.Resume with
        | Some path when root -> Resume.load path initial
        | _ -> initial, 1
    // Under mpirun every rank starts from rank 0's state and epoch (a resumed run: the
    // checkpoint rank 0 read, so only rank 0 needs the file).
    let state, firstEpoch =
        if isNull comm then state, firstEpoch
        else
            let epoch = torch.tensor [| int64 firstEpoch |]
            comm.Broadcast(epoch, 0)
            DataParallel.broadcast comm state, int (epoch.ToInt64())
    // The loop hands each state over to the next step (donation), so the optimizer updates the
    // parameters and moments in place instead of allocating new ones every step. Each rank draws
    // its own randomness (DataParallel.seed); the shuffling below is the same on every rank.
    let options = Options.seeded (if isNull comm then settings.Seed else DataParallel.seed comm settings.Seed) |> Options.donating
    let train: State -> torch.Tensor * torch.Tensor -> State * StepMetrics =
        if isNull comm then Nj.purifyWith options model.Train
        else
            let step = Nj.purifyWith options model.TrainShare
            fun state (x, y) ->
                let share = DataParallel.share comm (x.size 0)
                step state (x.narrow(0L, share.Start, share.Length), y.narrow(0L, share.Start, share.Length), share.Weight)
    let stepsPerEpoch = int ((images + int64 settings.BatchSize - 1L) / int64 settings.BatchSize)
    say "Training %A on %d images (%d steps per epoch), testing on %d." settings.Kind images stepsPerEpoch testSplit.Labels.shape.[0]
    if not (isNull comm) then say "Data-parallel on %d ranks (%s): each takes its share of every batch of %d." comm.Size comm.Library settings.BatchSize
    // The training accuracy of an epoch sums the ranks' shares.
    let runEpoch train settings epoch state split onStep =
        let next, loss, accuracy = runEpoch train settings epoch state split onStep
        next, loss, (if isNull comm then accuracy else DataParallel.sum comm accuracy)
    let report epoch loss trainAcc =
        sprintf "epoch %2d/%d  loss %.4f  train accuracy %.4f  (%.1f s)" epoch settings.Epochs loss trainAcc clock.Elapsed.TotalSeconds
    let epochs = [ firstEpoch .. settings.Epochs ]
    let final =
        if settings.Plain || settings.Quiet then
            epochs
            |> List.fold (fun state epoch ->
                let next, loss, acc = runEpoch train settings epoch state trainSplit ignore
                say "%s" (report epoch loss acc)
                next) state
        else
            AnsiConsole.Progress().Start(fun ctx ->
                let task = ctx.AddTask("training", maxValue = float (stepsPerEpoch * epochs.Length))
                epochs
                |> List.fold (fun state epoch ->
                    let next, loss, acc = runEpoch train settings epoch state trainSplit (fun () -> task.Increment 1.0)
                    task.Description <- sprintf "epoch %d, loss %.4f" epoch loss
                    AnsiConsole.MarkupLine(Markup.Escape(report epoch loss acc))
                    next) state)
    say ""
    say "%s" (Summary.renderOf model final)
    if not (isNull comm) then
        DataParallel.checkInSync comm final
        let stats = comm.Statistics
        say "All ranks hold the same state. Collectives: %d, %.2f s on rank 0 (%.1f%% of the run)." stats.Calls stats.Elapsed.TotalSeconds (100.0 * stats.Elapsed.TotalSeconds / clock.Elapsed.TotalSeconds)
    if root then settings.Save |> Option.iter (fun path -> Resume.save path final settings.Epochs)
    final, accuracy model final testSplit

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<Arguments>(programName = "digits")
    try
        let _, testAccuracy = run (settingsOf (parser.ParseCommandLine argv))
        let comm = communicator ()
        if isNull comm || comm.IsRoot then printfn "test accuracy: %.4f" testAccuracy
        0
    with
    | :? ArguParseException as e ->
        eprintfn "%s" e.Message
        2
    | :? ArgumentException as e ->
        eprintfn "digits: %s" e.Message
        eprintfn "%s" (parser.PrintUsage())
        2
    | :? System.IO.IOException
    | :? InvalidOperationException as e ->
        // Missing, corrupted or mismatching checkpoints and data files.
        eprintfn "digits: %s" e.Message
        1
