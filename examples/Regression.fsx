// An F# script: a small network fits y = sin(3x) + noise with its own Adam optimizer.
// Run it against the library built from this checkout:
//   dotnet build Ninjax.sln -c Release && dotnet fsi examples/Regression.fsx
// It exits with code 1 when the fit is not good enough, so the test suite runs it too.
#r "nuget: TorchSharp-cpu, 0.107.0"
#r "../src/Ninjax.Fs/bin/Release/net10.0/Ninjax.Fs.dll"

open TorchSharp
open Ninjax

// A script has no deps.json to point at libtorch: this finds it in the TorchSharp-cpu package.
// (Most tensor functions do so on first use; the Generator constructor below does not.)
torch.InitializeDeviceType DeviceType.CPU

/// A 1-64-64-1 network that owns its optimizer.
type Regressor(?learningRate: float, ?name: string) as this =
    inherit Module(defaultArg name "regressor")
    let h1 = this.Sub("h1", fun () -> Dense 64)
    let h2 = this.Sub("h2", fun () -> Dense 64)
    let out = this.Sub("out", fun () -> Dense 1)
    let opt = this.Sub("opt", fun () -> Optimizer(Optax.adam (defaultArg learningRate 1e-2)))

    member _.Predict(x: torch.Tensor) =
        x |> h1.Forward |> torch.tanh |> h2.Forward |> torch.tanh |> out.Forward

    member this.Loss(x: torch.Tensor, y: torch.Tensor) = (this.Predict x - y).square().mean()

    member this.Train(x: torch.Tensor, y: torch.Tensor) =
        (opt.Minimize(this.Loss, [ Target.Module h1; Target.Module h2; Target.Module out ], (x, y))).Loss

// Data from a seeded generator: 256 points on [-1, 1].
let generator = new torch.Generator(7UL)
let x = torch.linspace(-1.0, 1.0, 256L).reshape(256L, 1L)
let y = torch.sin(x.mul(torch.tensor 3.0f)).add(torch.randn([| 256L; 1L |], generator = generator).mul(torch.tensor 0.05f))

let model = Regressor()
let mutable state = Nj.init 0L model.Train State.empty (x, y)
let train = Nj.purify model.Train

let losses =
    [ for step in 1..300 do
        let next, loss = train state (x, y)
        state <- next
        let value = loss.item<float32> ()
        if step % 50 = 0 || step = 1 then printfn "step %3d  loss %.5f" step value
        yield value ]

let first, last = List.head losses, List.last losses
printfn "parameters: %s" (String.concat ", " (State.keys state |> List.filter (fun k -> not (k.StartsWith "regressor/opt"))))
if last < 0.01f && last < first / 10.0f then
    printfn "Fit: loss %.5f -> %.5f" first last
else
    eprintfn "The fit is not good enough: loss %.5f -> %.5f (expected below 0.01 and a tenfold fall)." first last
    exit 1
