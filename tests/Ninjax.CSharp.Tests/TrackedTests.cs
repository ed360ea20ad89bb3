using Xunit;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>PureTracked reports the keys a call read, modified and created.</summary>
public class TrackedTests
{
    [Fact]
    public void Tracking_reports_read_modified_and_created_keys()
    {
        var counter = new Counter("tc");
        var v = new Variable(() => ones(1), "tv");
        var run = Nj.PureTracked(() => counter.Increment() + v.Read());
        var first = run(States.Empty, create: true);
        Assert.Equal(new[] { "tc/count", "tv/value" }, first.Created);
        Assert.Equal(new[] { "tc/count" }, first.Modified);
        Assert.Equal(new[] { "tc/count", "tv/value" }, first.Read);

        var second = run(first.State);
        Assert.Empty(second.Created);
        Assert.Equal(new[] { "tc/count" }, second.Modified);
        Assert.True(second.Read.Contains("tv/value"));
        Assert.Equal(3f, second.Output.item<float>());
    }

    [Fact]
    public void Ignored_writes_count_as_modified_and_change_nothing()
    {
        var counter = new Counter("ti");
        var state = Nj.Init(counter.Increment)(States.Empty);
        var (after, output, _, modified, _) = Nj.PureTracked(counter.Increment)(state, ignore: true);
        Assert.Equal(new[] { "ti/count" }, modified);
        Assert.Equal(0f, after["ti/count"].item<float>());
        Assert.Equal(1f, output.item<float>());
    }
}
