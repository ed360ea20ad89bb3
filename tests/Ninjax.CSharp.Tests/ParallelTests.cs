using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Purified functions called from several threads at once.</summary>
public class ParallelTests
{
    [Fact]
    public async Task Parallel_training_steps_from_eight_threads_equal_the_serial_ones()
    {
        var model = new Quickstart.MyModel(3);
        var x = ones(8, 6);
        var ys = Enumerable.Range(0, 8).Select(i => full(new long[] { 8, 3 }, (float)i)).ToArray();
        var state = Nj.Init(model.Train)(States.Empty, x, ys[0], seed: 0);
        var train = Nj.Pure(model.Train);
        var serial = ys.Select(y => train(state, x, y)).ToArray();
        var parallel = await Task.WhenAll(ys.Select(y => Task.Run(() => train(state, x, y))));
        for (var i = 0; i < ys.Length; i++)
        {
            SameTensor(serial[i].Output, parallel[i].Output, $"loss {i}");
            SameState(serial[i].State, parallel[i].State, $"state {i}");
        }
    }

    [Fact]
    public async Task Modules_built_on_several_threads_get_their_own_paths()
    {
        var trees = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => new Tree($"tree{i}"))));
        for (var i = 0; i < trees.Length; i++)
        {
            Assert.Equal($"tree{i}/left", trees[i].Left.Path);
            Assert.Equal($"tree{i}/right", trees[i].Right.Path);
        }
        var states = await Task.WhenAll(trees.Select(t => Task.Run(() => Nj.Init(t.Run)(States.Empty))));
        for (var i = 0; i < trees.Length; i++)
            Assert.Equal(new[] { $"tree{i}/inline/count", $"tree{i}/left/value", $"tree{i}/right/value" }, states[i].Keys);
    }
}
