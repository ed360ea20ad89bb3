/// What each rank runs under mpirun for the data-parallel tests: one scenario per test, results
/// written as checkpoints and text files into a folder that the test (outside MPI) inspects.
module Ninjax.Distributed.Tests.Worker

open System
open System.IO
open TorchSharp
open Ninjax

/// A two-layer tanh network with its own optimizer, data-parallel when given a communicator.
type Net(transform: GradientTransformation, comm: Communicator, hidden: int, name: string) as this =
    inherit Module(name)
    let opt = this.Sub("opt", fun () -> Optimizer(transform, dataParallel = comm))
    let h = this.Sub("h", fun () -> Dense hidden)
    let out = this.Sub("out", fun () -> Dense 4)

    member this.Loss(x: torch.Tensor, y: torch.Tensor) =
        (out.Forward(torch.tanh (h.Forward x)) - y).square().mean()

    /// One optimizer step; returns the loss and the gradient norm the optimizer reports.
    member this.Step(x: torch.Tensor, y: torch.Tensor) : torch.Tensor * torch.Tensor =
        let metrics = opt.Minimize(this.Loss, [ Target.Module h; Target.Module out ], (x, y))
        metrics.Loss, metrics.GradNorm

    member this.Train(x: torch.Tensor, y: torch.Tensor) : torch.Tensor = fst (this.Step(x, y))

/// The optimizers the equivalence test runs.
let transformOf (name: string) =
    match name with
    | "sgd" -> Optax.sgdWith { SgdOptions.Default with LearningRate = Schedule.constant 0.05; Momentum = 0.9 }
    | "adam" -> Optax.adam 1e-2
    | other -> failwithf "unknown optimizer '%s'" other

/// The same data on every rank: 50 batches of 16 rows of 8 features, targets of 4.
let data (steps: int) (batch: int) =
    let g = new torch.Generator(7UL)
    let x = torch.randn([| int64 (steps * batch); 8L |], generator = g)
    let w = torch.randn([| 8L; 4L |], generator = g)
    let y = torch.sin (x.matmul w) + 0.1f * torch.randn([| int64 (steps * batch); 4L |], generator = g)
    x, y

let steps = 50
let batch = 16

let save (folder: string) (name: string) (state: State) =
    Checkpoint.save (Path.Combine(folder, name + ".safetensors")) (state, CheckpointMetadata.empty)

let write (folder: string) (name: string) (text: string) = File.WriteAllText(Path.Combine(folder, name), text)

/// Trains data-parallel for `steps` steps on this rank's half of every batch, from rank 0's
/// state (ranks initialise with different seeds); rank 0 also trains one process on the whole
/// batches from the same start. Saves rank<r>.safetensors, and reference.safetensors on rank 0,
/// and each step's loss and gradient norm.
let equivalence (comm: Communicator) (optimizer: string) (folder: string) =
    let x, y = data steps batch
    let net = Net(transformOf optimizer, comm, 32, "model")
    let sample = x.narrow(0L, 0L, 2L), y.narrow(0L, 0L, 2L)
    let own = Nj.init (100L + int64 comm.Rank) net.Train State.empty sample
    let start = DataParallel.broadcast comm own
    let train = Nj.purifyWith (Options.seeded (DataParallel.seed comm 0L)) net.Step
    let mutable state = start
    let losses = ResizeArray()
    let norms = ResizeArray()
    let rows = ResizeArray()
    for i in 0 .. steps - 1 do
        let xb, yb = x.narrow(0L, int64 (i * batch), int64 batch), y.narrow(0L, int64 (i * batch), int64 batch)
        let xs, ys = DataParallel.shard comm xb, DataParallel.shard comm yb
        rows.Add(sprintf "%d %d" (DataParallel.share comm (int64 batch)).Start (xs.size 0))
        let next, (loss, norm) = train state (xs, ys)
        state <- next
        losses.Add(loss.ToDouble())
        norms.Add(norm.ToDouble())
    write folder (sprintf "rows%d.txt" comm.Rank) (String.Join("\n", rows))
    save folder (sprintf "rank%d" comm.Rank) state
    let lines (values: ResizeArray<float>) = String.Join("\n", values |> Seq.map (fun l -> l.ToString("R")))
    write folder (sprintf "losses%d.txt" comm.Rank) (lines losses)
    write folder (sprintf "norms%d.txt" comm.Rank) (lines norms)
    if comm.IsRoot then
        let single = Net(transformOf optimizer, null, 32, "model")
        let train = Nj.purifyWith (Options.seeded 0L) single.Step
        let mutable reference = start
        let referenceLosses = ResizeArray()
        let referenceNorms = ResizeArray()
        for i in 0 .. steps - 1 do
            let next, (loss, norm) = train reference (x.narrow(0L, int64 (i * batch), int64 batch), y.narrow(0L, int64 (i * batch), int64 batch))
            reference <- next
            referenceLosses.Add(loss.ToDouble())
            referenceNorms.Add(norm.ToDouble())
        save folder "reference" reference
        write folder "reference-losses.txt" (lines referenceLosses)
        write folder "reference-norms.txt" (lines referenceNorms)
    DataParallel.checkInSync comm state

/// Ranks initialise with different seeds; saves each rank's state before and after the broadcast.
let broadcast (comm: Communicator) (folder: string) =
    let x, y = data 1 batch
    let net = Net(Optax.adam 1e-3, comm, 32, "model")
    let own = Nj.init (100L + int64 comm.Rank) net.Train State.empty (x, y)
    save folder (sprintf "before%d" comm.Rank) own
    let shared = DataParallel.broadcast comm own
    save folder (sprintf "after%d" comm.Rank) shared

/// Rank 1 builds a wider hidden layer: the broadcast must fail on every rank, naming the keys.
let layoutMismatch (comm: Communicator) (folder: string) =
    let x, y = data 1 batch
    let net = Net(Optax.adam 1e-3, comm, (if comm.Rank = 1 then 48 else 32), "model")
    let own = Nj.init 0L net.Train State.empty (x, y)
    try
        DataParallel.broadcast comm own |> ignore
        write folder (sprintf "error%d.txt" comm.Rank) "no error"
    with :? InvalidOperationException as e -> write folder (sprintf "error%d.txt" comm.Rank) e.Message

/// Rank 1 changes one entry: the in-sync check must name it on every rank.
let outOfSync (comm: Communicator) (folder: string) =
    let x, y = data 1 batch
    let net = Net(Optax.adam 1e-3, comm, 32, "model")
    let state = DataParallel.broadcast comm (Nj.init 0L net.Train State.empty (x, y))
    let state = if comm.Rank = 1 then State.add "model/out/b" (state.["model/out/b"] + 1e-6f) state else state
    try
        DataParallel.checkInSync comm state
        write folder (sprintf "error%d.txt" comm.Rank) "no error"
    with :? InvalidOperationException as e -> write folder (sprintf "error%d.txt" comm.Rank) e.Message

/// Each rank draws from Nj.rng with the seed DataParallel.seed derives; writes the draws.
let seeds (comm: Communicator) (folder: string) =
    let draw = Nj.purifyWith (Options.seeded (DataParallel.seed comm 5L)) (fun () -> torch.rand([| 4L |], generator = Nj.rng ()))
    let _, values = draw State.empty ()
    let gathered = comm.AllGather values
    write folder (sprintf "seed%d.txt" comm.Rank) (string (DataParallel.seed comm 5L))
    save folder (sprintf "draws%d" comm.Rank) (State.ofSeq [ "draws", gathered ])

/// Trains in a loop; at step 20 rank 1 fails as `how` says: killed (SIGKILL), an unhandled
/// exception, or a hang (it sleeps instead of joining the next all-reduce).
let fault (comm: Communicator) (how: string) (folder: string) =
    let x, y = data steps batch
    let net = Net(Optax.adam 1e-3, comm, 32, "model")
    let train = Nj.purifyWith (Options.seeded 0L) net.Train
    let mutable state = DataParallel.broadcast comm (Nj.init 0L net.Train State.empty (x.narrow(0L, 0L, 2L), y.narrow(0L, 0L, 2L)))
    for i in 0 .. 1000 do
        if comm.Rank = 1 && i = 20 then
            match how with
            | "kill" -> Diagnostics.Process.GetCurrentProcess().Kill()
            | "exception" -> raise (InvalidOperationException "rank 1 fails on purpose at step 20")
            | "hang" -> Threading.Thread.Sleep(TimeSpan.FromHours 1.0)
            | other -> failwithf "unknown fault '%s'" other
        let j = i % steps
        let xb, yb = x.narrow(0L, int64 (j * batch), int64 batch), y.narrow(0L, int64 (j * batch), int64 batch)
        let next, _ = train state (DataParallel.shard comm xb, DataParallel.shard comm yb)
        state <- next
    write folder (sprintf "finished%d.txt" comm.Rank) "finished"

/// Runs a scenario on this rank: `worker <scenario> <folder> [argument]`.
let run (args: string list) : int =
    torch.set_num_threads 1
    let comm = Communicator.World
    match args with
    | [ "equivalence"; optimizer; folder ] -> equivalence comm optimizer folder
    | [ "broadcast"; folder ] -> broadcast comm folder
    | [ "layout"; folder ] -> layoutMismatch comm folder
    | [ "sync"; folder ] -> outOfSync comm folder
    | [ "seeds"; folder ] -> seeds comm folder
    | [ "fault"; how; folder ] -> fault comm how folder
    | _ -> failwithf "unknown worker arguments: %A" args
    0
