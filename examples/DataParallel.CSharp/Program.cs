// Data-parallel training in C#: every rank holds the whole model, trains on its share of each
// batch, and the optimizer averages the gradients across ranks. Run it on this machine with
//   mpirun -np 2 dotnet examples/DataParallel.CSharp/bin/Release/net10.0/DataParallel.CSharp.dll
// (as root add --allow-run-as-root). Started without mpirun, it is a job of one process.
using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace DataParallelExample;

/// <summary>A small regressor whose optimizer averages gradients across the ranks of <c>comm</c>.</summary>
public sealed class Regressor : Module
{
    private readonly Dense hidden;
    private readonly Dense output;
    private readonly OptimizerModule opt;

    /// <summary>A regressor trained data-parallel across the ranks of <paramref name="comm"/> (null: one process).</summary>
    public Regressor(Communicator? comm, string name = "model") : base(name)
    {
        opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(1e-2), dataParallel: comm));
        hidden = Sub("hidden", () => new Dense(64));
        output = Sub("output", () => new Dense(1));
    }

    /// <summary>The mean squared error on a batch.</summary>
    public Tensor Loss(Tensor x, Tensor y) => (output.Forward(tanh(hidden.Forward(x))) - y).square().mean();

    /// <summary>One step on this rank's share of a batch; returns the loss averaged over the ranks.</summary>
    public Tensor Train(Tensor x, Tensor y) => opt.Minimize(Loss, [hidden, output], x, y).Loss;
}

/// <summary>Fits a noisy sine data-parallel and checks that every rank ends with the same state.</summary>
public static class Program
{
    /// <summary>Trains for the number of steps given as the first argument (default 300).</summary>
    public static int Main(string[] args)
    {
        var steps = args.Length > 0 ? int.Parse(args[0]) : 300;
        set_num_threads(1);
        var comm = Communicator.World;

        // The same data on every rank (one generator seed); each takes its share of every batch.
        using var generator = new Generator(1);
        var x = rand([4096, 1], generator: generator) * 6 - 3;
        var y = sin(x) + 0.05 * randn([4096, 1], generator: generator);

        // The ranks initialise with different seeds; the broadcast gives every rank rank 0's state
        // (after checking that all hold the same keys, shapes and dtypes).
        var model = new Regressor(comm);
        var init = Nj.Init(model.Train);
        var state = DataParallel.Broadcast(comm, init(States.Empty, x[..2], y[..2], seed: comm.Rank));

        var train = Nj.Pure(model.Train, donate: true);
        var seed = DataParallel.Seed(comm, 0);   // each rank's own randomness (none here, but dropout would use it)
        var first = 0f;
        var last = 0f;
        for (var step = 0; step < steps; step++)
        {
            var start = step * 128 % 4096;
            var xs = DataParallel.Shard(comm, x.narrow(0, start, 128));
            var ys = DataParallel.Shard(comm, y.narrow(0, start, 128));
            (state, var loss) = train(state, xs, ys, seed: seed);
            last = loss.item<float>();
            if (step == 0) first = last;
            if (comm.IsRoot && step % 100 == 0) Console.WriteLine($"step {step}: loss {last:F5}");
        }

        // Every update was the same on every rank, so the states agree bit for bit; this checks it.
        DataParallel.CheckInSync(comm, state);
        var stats = comm.Statistics;
        if (comm.IsRoot)
        {
            Console.WriteLine($"final loss {last:F5} (first {first:F5}); {comm.Size} ranks hold the same state.");
            Console.WriteLine($"{stats.Calls} collectives took {stats.Elapsed.TotalMilliseconds:F0} ms on rank 0.");
        }
        return last < first / 4 ? 0 : 1;
    }
}
