using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A module built directly inside another module's constructor, which is an error.</summary>
public sealed class Careless : Module
{
    /// <summary>Builds a Counter without Sub, on purpose.</summary>
    public Careless() : base(null) => Inner = new Counter("inner");

    /// <summary>The wrongly built module.</summary>
    public Counter Inner { get; }
}

/// <summary>Errors reach C# as ordinary .NET exceptions, with the messages F# callers see.</summary>
public class ErrorTests
{
    private static readonly Options Defaults = OptionsModule.defaults;

    /// <summary>Runs <paramref name="body"/> through the facade and through the F# API with the same options,
    /// asserts both raise <typeparamref name="TException"/> with the same message, and returns it.</summary>
    private static string SameErrorAsFSharp<TException>(Func<object?> body, State state, bool? create = null, bool? modify = null)
        where TException : Exception
    {
        var viaCSharp = Raises<TException>(() => Nj.Pure(body)(state, create: create, modify: modify));
        var options = Defaults;
        if (create is { } c) options = OptionsModule.withCreate(c, options);
        if (modify is { } m) options = OptionsModule.withModify(m, options);
        var viaFSharp = Raises<TException>(() => PurifyInFSharp(body, state, options));
        Assert.Equal(viaFSharp.Message, viaCSharp.Message);
        return viaCSharp.Message;
    }

    private static readonly State WithW = States.From(("m/w", ones(2)));

    [Fact]
    public void A_missing_key_is_a_KeyNotFoundException_naming_it_and_nearby_keys()
    {
        var m = new Counter("m");
        var message = SameErrorAsFSharp<KeyNotFoundException>(() => m.Get("nothing"), WithW);
        Assert.Contains("'m/nothing'", message);
        Assert.Contains("m/w", message);
    }

    [Fact]
    public void Creating_with_create_off_is_an_InvalidOperationException()
    {
        var m = new Counter("m");
        var message = SameErrorAsFSharp<InvalidOperationException>(() => m.Get("fresh", () => zeros(4)), WithW);
        Assert.Contains("'m/fresh'", message);
        Assert.Contains("create=false", message);
    }

    [Fact]
    public void Writing_another_shape_is_an_ArgumentException_and_modify_off_an_InvalidOperationException()
    {
        var m = new Counter("m");
        var shape = SameErrorAsFSharp<ArgumentException>(() => m.Put("w", ones(3)), WithW);
        Assert.Contains("'m/w'", shape);
        Assert.Contains("[|3L|]", shape);
        var modify = SameErrorAsFSharp<InvalidOperationException>(() => m.Put("w", ones(2)), WithW, modify: false);
        Assert.Contains("modify=false", modify);
    }

    [Fact]
    public void Randomness_without_a_seed_explains_how_to_pass_one()
    {
        var message = SameErrorAsFSharp<InvalidOperationException>(() => Nj.Rng(), States.Empty);
        Assert.Contains("no seed", message);
    }

    [Fact]
    public void Gradient_targets_that_match_nothing_or_are_never_read_are_errors()
    {
        var v = new Variable(() => ones(2), "v");
        var state = States.From(("v/value", ones(2)), ("u/value", ones(2)));
        var none = SameErrorAsFSharp<KeyNotFoundException>(() => Nj.Grad(() => v.Read().sum(), "nowhere"), state);
        Assert.Contains("'nowhere'", none);
        var unread = SameErrorAsFSharp<InvalidOperationException>(() => Nj.Grad(() => v.Read().sum(), "u"), state);
        Assert.Contains("'u/value'", unread);
        Assert.Contains("never reads", unread);
    }

    [Fact]
    public void A_gradient_target_of_another_type_is_an_ArgumentException()
    {
        var v = new Variable(() => ones(2), "v");
        var error = Raises<ArgumentException>(() => Nj.Pure(() => Nj.Grad(() => v.Read().sum(), v, 42))(States.From(("v/value", ones(2)))));
        Assert.Contains("position 1", error.Message);
        Assert.Contains("Int32", error.Message);
    }

    [Fact]
    public void A_purified_call_inside_another_needs_nested_and_cannot_loosen_flags()
    {
        var c = new Counter("n");
        var inner = Nj.Pure(c.Increment);
        var notNested = Raises<InvalidOperationException>(() => Nj.Pure(() => inner(States.Empty))(States.Empty, create: true));
        Assert.Contains("nested", notNested.Message);

        var nested = Nj.Pure(c.Increment, nested: true);
        var (_, count) = Nj.Pure(() => nested(States.Empty).Output)(States.Empty, create: true);
        Assert.Equal(1f, count.item<float>());

        var loosen = Raises<InvalidOperationException>(() => Nj.Pure(() => nested(States.Empty, create: true))(States.Empty));
        Assert.Contains("loosen", loosen.Message);
    }

    [Fact]
    public void State_access_outside_a_purified_call_and_a_null_state_are_explained()
    {
        var c = new Counter("outside");
        var outside = Raises<InvalidOperationException>(() => c.Increment());
        Assert.Contains("purified call", outside.Message);
        Raises<InvalidOperationException>(() => Nj.Rng());

        var viaCSharp = Raises<ArgumentNullException>(() => Nj.Pure(c.Increment)(null!));
        var viaFSharp = Raises<ArgumentNullException>(() => PurifyInFSharp(c.Increment, null!, Defaults));
        Assert.Equal(viaFSharp.Message, viaCSharp.Message);
        Raises<ArgumentNullException>(() => Nj.Pure((Func<Tensor>)null!));
    }

    [Fact]
    public void Module_naming_mistakes_are_caught_at_construction()
    {
        var noName = Raises<ArgumentException>(() => new Counter());
        Assert.Contains("Counter", noName.Message);
        var badName = Raises<ArgumentException>(() => new Counter("bad/name"));
        Assert.Contains("bad/name", badName.Message);
        var parent = new Counter("parent");
        var careless = Raises<InvalidOperationException>(() => parent.Sub("careless", () => new Careless()));
        Assert.Contains("parent/careless", careless.Message);
        Assert.Contains("Sub", careless.Message);
    }

    [Fact]
    public void A_failed_call_leaves_the_callers_state_untouched()
    {
        var m = new Counter("m");
        var state = States.From(("m/count", full(1, 5f)));
        Raises<ArgumentException>(() => Nj.Pure(() =>
        {
            m.Increment();
            return m.Put("count", ones(3));
        })(state));
        Assert.Equal(new[] { "m/count" }, state.Keys);
        Assert.Equal(5f, state["m/count"].item<float>());
    }
}
