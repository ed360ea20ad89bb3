// The seed README's Quickstart in C#: a model with its own train method, initialized, purified and
// called in a loop. Run it with `dotnet run --project examples/Quickstart.CSharp`.
using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace Quickstart;

/// <summary>The Quickstart's steps, callable from tests.</summary>
public static class Program
{
    /// <summary>What a run produced: the bias right after init, the loss of each step, the final state.</summary>
    public sealed record Result(Tensor InitialBias, IReadOnlyList<float> Losses, State State);

    /// <summary>Trains the Quickstart model for <paramref name="steps"/> steps, writing progress to <paramref name="log"/>.</summary>
    public static Result Run(TextWriter log, int steps = 10)
    {
        // Create model and example data.
        var model = new MyModel(3, lr: 0.01);
        var x = ones(64, 32);
        var y = ones(64, 3);

        // Populate the initial state.
        var state = Nj.Init(model.Train)(States.Empty, x, y, seed: 0);
        var initialBias = state["model/bias"];
        log.WriteLine(initialBias.ToString(TorchSharp.TensorStringStyle.Numpy)); // [0, 0, 0]

        // Purify once, then train in a loop.
        var train = Nj.Pure(model.Train);
        var losses = new List<float>();
        for (var step = 0; step < steps; step++)
        {
            (state, var loss) = train(state, x, y);
            losses.Add(loss.item<float>());
            log.WriteLine($"Loss: {losses[^1]:F6}");
        }

        // Look at the parameters.
        log.WriteLine(state["model/bias"].ToString(TorchSharp.TensorStringStyle.Numpy));
        return new Result(initialBias, losses, state);
    }

    /// <summary>Runs the Quickstart on the console.</summary>
    public static int Main()
    {
        Run(Console.Out);
        return 0;
    }
}
