// The seed README's Quickstart in F#: a model with its own train method, purified and called in a loop.
open TorchSharp
open Ninjax

type MyModel(size: int, ?lr: float, ?name: string) as this =
    inherit Module(defaultArg name "model")
    let lr = defaultArg lr 0.01
    // The optimizer is a submodule too: its moments live under model/opt.
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam lr))
    // Define submodules upfront.
    let h1 = this.Sub("h1", fun () -> Dense 128)
    let h2 = this.Sub("h2", fun () -> Dense 128)

    member this.Predict(x: torch.Tensor) =
        let x = torch.nn.functional.relu (h1.Forward x)
        let x = torch.nn.functional.relu (h2.Forward x)
        // Define submodules inline.
        let x = this.Sub("h3", fun () -> Dense(size, useBias = false)).Forward x
        // Create state entries inline.
        x + this.Get("bias", fun () -> torch.zeros(int64 size))

    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Predict x - y).square().mean()

    member this.Train(x: torch.Tensor, y: torch.Tensor) =
        // Gradient with respect to submodules or state entries, then an Adam update of them.
        let targets = [ Target.Module h1; Target.Module h2; Target.Key(this.Path + "/h3"); Target.Key(this.Path + "/bias") ]
        let metrics = opt.Minimize(this.Loss, targets, (x, y))
        metrics.Loss

[<EntryPoint>]
let main _ =
    // Create model and example data.
    let model = MyModel(3, lr = 0.01)
    let x = torch.ones(64L, 32L)
    let y = torch.ones(64L, 3L)

    // Populate the initial state.
    let mutable state = Nj.init 0L model.Train State.empty (x, y)
    printfn "%s" (state.["model/bias"].ToString(TensorStringStyle.Numpy)) // [0, 0, 0]

    // Purify once, then train in a loop.
    let train = Nj.purify model.Train
    for _ in 1..10 do
        let next, loss = train state (x, y)
        state <- next
        printfn "Loss: %.6f" (loss.item<float32> ())

    // Look at the parameters.
    printfn "%s" (state.["model/bias"].ToString(TensorStringStyle.Numpy))
    0
