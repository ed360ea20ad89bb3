using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A module whose methods draw random numbers, to provoke the missing-seed error.</summary>
public sealed class Sampler : Module
{
    /// <summary>A top-level sampler.</summary>
    public Sampler(string name = "sampler") : base(name) { }

    /// <summary>Draws noise from the call's generator.</summary>
    public Tensor Draw() => rand(new long[] { 3 }, generator: Nj.Rng());

    /// <summary>Draws noise and adds one.</summary>
    public Tensor Shifted() => Draw() + 1;
}

/// <summary>What C# callers read in messages: purified functions named after their method, the C# form of the API,
/// shapes as [32, 128]. The F# twins are pinned in tests/Ninjax.Tests/MessageTests.fs.</summary>
public class MessageTests
{
    [Fact]
    public void A_purified_method_group_is_named_after_its_type_and_method()
    {
        var sampler = new Sampler();
        var e = Raises<InvalidOperationException>(() => Nj.Pure(sampler.Draw)(States.Empty));
        Assert.StartsWith("Sampler.Draw asked for randomness but no seed was given", e.Message);
        Assert.Contains("seed: 0", e.Message);
    }

    [Fact]
    public void A_lambda_that_calls_one_method_of_the_callers_code_is_named_after_it()
    {
        var sampler = new Sampler();
        var x = ones(3);
        var e = Raises<InvalidOperationException>(() => Nj.Pure(() => sampler.Draw() * x)(States.Empty));
        Assert.StartsWith("Sampler.Draw asked for randomness", e.Message);
    }

    [Fact]
    public void A_lambda_that_calls_several_methods_is_named_after_where_it_is_written()
    {
        var sampler = new Sampler();
        var e = Raises<InvalidOperationException>(() => Nj.Pure(() => sampler.Draw() + sampler.Shifted())(States.Empty));
        Assert.StartsWith(
            "the lambda in MessageTests.A_lambda_that_calls_several_methods_is_named_after_where_it_is_written asked for randomness",
            e.Message);
    }

    [Fact]
    public void A_name_given_by_the_caller_wins()
    {
        var sampler = new Sampler();
        var e = Raises<InvalidOperationException>(() => Nj.Pure(sampler.Draw, name: "the sampler")(States.Empty));
        Assert.StartsWith("the sampler asked for randomness", e.Message);
        var init = Raises<InvalidOperationException>(() => Nj.Init(sampler.Draw)(States.Empty));
        Assert.StartsWith("Sampler.Draw asked for randomness", init.Message);
        Assert.Contains("Nj.Init(f)(state, x, seed: 0)", init.Message);
    }

    [Fact]
    public void Donation_errors_name_the_CSharp_flag()
    {
        var counter = new Counter("c");
        var state = Nj.Init(counter.Increment)(States.Empty);
        var train = Nj.Pure(counter.Increment, donate: true);
        var (next, _) = train(state);
        Assert.True(state.IsDonated);
        var e = Raises<InvalidOperationException>(() => _ = state.Count);
        Assert.Contains("donated to Counter.Increment (donate: true)", e.Message);
        Assert.DoesNotContain("Options", e.Message);
        Assert.Equal(1, next.Count);
    }

    [Fact]
    public void Shapes_read_as_bracketed_lists_everywhere()
    {
        var layer = new Dense(4, name: "dense");
        var state = Nj.Init(layer.Forward)(States.Empty, ones(2, 3), seed: 0);
        var e = Raises<ArgumentException>(() => Nj.Pure(layer.Forward)(state, ones(2, 5)));
        Assert.Contains("it got shape [2, 5]", e.Message);
        Assert.Contains("dense/w: [3, 4] Float32", state.ToString());
    }
}
