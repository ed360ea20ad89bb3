using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A module built directly, without a name, inside another module's constructor, which is an error.</summary>
public sealed class Careless : Module
{
    /// <summary>Builds a Counter without Sub or a name, on purpose.</summary>
    public Careless() : base(null) => Inner = new Counter();

    /// <summary>The wrongly built module.</summary>
    public Counter Inner { get; }
}

/// <summary>Errors reach C# as ordinary .NET exceptions. The same failure names the C# form of the API for a C#
/// caller and the F# form for an F# caller; both read shapes as [32, 128].</summary>
public class ErrorTests
{
    private static readonly Options Defaults = OptionsModule.defaults;

    /// <summary>Runs <paramref name="body"/> through the facade and through the F# API with the same options and
    /// returns both messages; both raise <typeparamref name="TException"/>. The F# wording is what an F# caller of
    /// the same failure reads.</summary>
    private static (string CSharp, string FSharp) BothErrors<TException>(Func<object?> body, State state, bool? create = null, bool? modify = null)
        where TException : Exception
    {
        var viaCSharp = Raises<TException>(() => Nj.Pure(body)(state, create: create, modify: modify));
        var options = Defaults;
        if (create is { } c) options = OptionsModule.withCreate(c, options);
        if (modify is { } m) options = OptionsModule.withModify(m, options);
        var viaFSharp = Raises<TException>(() => PurifyInFSharp(body, state, options));
        return (viaCSharp.Message, viaFSharp.Message);
    }

    /// <summary>Asserts both messages contain <paramref name="common"/>.</summary>
    private static void BothContain((string CSharp, string FSharp) messages, params string[] common)
    {
        foreach (var part in common)
        {
            Assert.Contains(part, messages.CSharp);
            Assert.Contains(part, messages.FSharp);
        }
    }

    /// <summary>Asserts the C# message shows <paramref name="csharp"/> and not <paramref name="fsharp"/>, and the F#
    /// message the other way round.</summary>
    private static void InEachLanguage((string CSharp, string FSharp) messages, string csharp, string fsharp)
    {
        Assert.Contains(csharp, messages.CSharp);
        Assert.DoesNotContain(fsharp, messages.CSharp);
        Assert.Contains(fsharp, messages.FSharp);
        Assert.DoesNotContain(csharp, messages.FSharp);
    }

    private static readonly State WithW = States.From(("m/w", ones(2)));

    [Fact]
    public void A_missing_key_is_a_KeyNotFoundException_naming_it_and_nearby_keys()
    {
        var m = new Counter("m");
        var messages = BothErrors<KeyNotFoundException>(() => m.Get("nothing"), WithW);
        BothContain(messages, "'m/nothing'", "m/w");
        InEachLanguage(messages, "Get(name, () => ...)", "this.Get(name, fun () -> ...)");
        InEachLanguage(messages, "run with create: true or through Nj.Init.", "run with Options.withCreate true or through Nj.init.");
    }

    [Fact]
    public void Creating_with_create_off_is_an_InvalidOperationException()
    {
        var m = new Counter("m");
        var messages = BothErrors<InvalidOperationException>(() => m.Get("fresh", () => zeros(4)), WithW);
        BothContain(messages, "'m/fresh'", "shape [4]");
        InEachLanguage(messages, "create: false, modify: true, ignore: false", "create=false, modify=true, ignore=false");
        InEachLanguage(messages, "Run Nj.Init first or pass create: true.", "Run Nj.init first or pass Options.withCreate true.");
    }

    [Fact]
    public void Writing_another_shape_is_an_ArgumentException_and_modify_off_an_InvalidOperationException()
    {
        var m = new Counter("m");
        var shape = BothErrors<ArgumentException>(() => m.Put("w", ones(3)), WithW);
        BothContain(shape, "'m/w'", "it holds shape [2] dtype Float32, the new value has shape [3] dtype Float32");
        Assert.DoesNotContain("[|", shape.CSharp + shape.FSharp);
        var modify = BothErrors<InvalidOperationException>(() => m.Put("w", ones(2)), WithW, modify: false);
        InEachLanguage(modify, "modify: false", "modify=false");
    }

    [Fact]
    public void Randomness_without_a_seed_explains_how_to_pass_one()
    {
        var messages = BothErrors<InvalidOperationException>(() => Nj.Rng(), States.Empty);
        BothContain(messages, "no seed");
        InEachLanguage(messages, "train(state, x, seed: 0)", "Nj.purifyWith (Options.seeded 0L) f");
    }

    [Fact]
    public void Gradient_targets_that_match_nothing_or_are_never_read_are_errors()
    {
        var v = new Variable(() => ones(2), "v");
        var state = States.From(("v/value", ones(2)), ("u/value", ones(2)));
        var none = BothErrors<KeyNotFoundException>(() => Nj.Grad(() => v.Read().sum(), "nowhere"), state);
        BothContain(none, "'nowhere'");
        var unread = BothErrors<InvalidOperationException>(() => Nj.Grad(() => v.Read().sum(), "u"), state);
        BothContain(unread, "'u/value'", "never reads");
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
        // Both functions are named: the method group after its method, the lambda after where it is written.
        Assert.StartsWith("Counter.Increment is called inside the lambda in ErrorTests.A_purified_call_inside_another_needs_nested_and_cannot_loosen_flags, another purified call.", notNested.Message);
        Assert.Contains("(Nj.Pure(f, nested: true))", notNested.Message);
        Assert.DoesNotContain("Options", notNested.Message);

        var nested = Nj.Pure(c.Increment, nested: true);
        var (_, count) = Nj.Pure(() => nested(States.Empty).Output)(States.Empty, create: true);
        Assert.Equal(1f, count.item<float>());

        var loosen = Raises<InvalidOperationException>(() => Nj.Pure(() => nested(States.Empty, create: true), name: "outer")(States.Empty));
        Assert.Equal("Counter.Increment asks for create: true inside outer, which has create: false; an inner call cannot loosen its flags.", loosen.Message);
    }

    [Fact]
    public void State_access_outside_a_purified_call_and_a_null_state_are_explained()
    {
        var c = new Counter("outside");
        var outside = Raises<InvalidOperationException>(() => c.Increment());
        Assert.Contains("purified call", outside.Message);
        // Outside any call the calling code decides the language: this test is C#.
        Assert.Contains("Wrap the function with Nj.Pure or Nj.Init", outside.Message);
        Raises<InvalidOperationException>(() => Nj.Rng());

        var viaCSharp = Raises<ArgumentNullException>(() => Nj.Pure(c.Increment)(null!));
        var viaFSharp = Raises<ArgumentNullException>(() => PurifyInFSharp(c.Increment, null!, Defaults));
        InEachLanguage((viaCSharp.Message, viaFSharp.Message), "States.Empty", "State.empty");
        Raises<ArgumentNullException>(() => Nj.Pure((Func<Tensor>)null!));
    }

    [Fact]
    public void Module_naming_mistakes_are_caught_at_construction()
    {
        var noName = Raises<ArgumentException>(() => new Counter());
        Assert.Contains("Counter", noName.Message);
        Assert.Contains("pass name: \"model\"", noName.Message);
        Assert.Contains("parent.Sub(\"name\", () => new ...)", noName.Message);
        var badName = Raises<ArgumentException>(() => new Counter("bad/name"));
        Assert.Contains("bad/name", badName.Message);
        var parent = new Counter("parent");
        var careless = Raises<InvalidOperationException>(() => parent.Sub("careless", () => new Careless()));
        Assert.Contains("parent/careless", careless.Message);
        Assert.Contains("Sub(\"name\", () => new ...)", careless.Message);
        Assert.DoesNotContain("fun ()", careless.Message);
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
