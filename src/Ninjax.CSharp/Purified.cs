using System.Collections.Immutable;
using Microsoft.FSharp.Core;

namespace Ninjax.CSharp;

/// <summary>An impure function of one (tuple) argument, converted once to an F# function, with the
/// options it was purified with. Every call forwards to <c>Nj.purifyTracked</c> or <c>Nj.initWith</c>
/// of Ninjax.Fs; the only work done here is turning optional C# parameters into <see cref="Options"/>.</summary>
internal sealed class Purified<TArgs, TResult>
{
    private readonly FSharpFunc<TArgs, TResult> function;
    private readonly Options options;

    public Purified(Delegate original, Func<TArgs, TResult> function, bool nested, string? name, bool donate, string? rngStream)
    {
        this.function = FuncConvert.FromFunc(function);
        // Messages show the C# API, and name the function after the method it runs (GanModel.Train).
        var options = OptionsModule.withLanguage(Language.CSharp, OptionsModule.defaults);
        name ??= Naming.ofFunction(original) ?? Text.unnamed(Language.CSharp);
        if (nested) options = OptionsModule.nested(options);
        if (donate) options = OptionsModule.donating(options);
        if (rngStream is not null) options = OptionsModule.withRngStream(rngStream, options);
        if (name is not null) options = OptionsModule.named(name, options);
        this.options = options;
    }

    /// <summary>The options of one call: the purification's, with the given flags and seed set.</summary>
    private Options For(long? seed, bool? create, bool? modify, bool? ignore)
    {
        var o = options;
        if (seed is { } s) o = OptionsModule.withSeed(s, o);
        if (create is { } c) o = OptionsModule.withCreate(c, o);
        if (modify is { } m) o = OptionsModule.withModify(m, o);
        if (ignore is { } i) o = OptionsModule.withIgnore(i, o);
        return o;
    }

    public (State State, TResult Output) Run(State state, TArgs args, long? seed, bool? create, bool? modify, bool? ignore)
    {
        var (after, output) = NjModule.callUntracked(For(seed, create, modify, ignore), function, state, args);
        return (after, output);
    }

    public (State State, TResult Output, IReadOnlySet<string> Read, IReadOnlySet<string> Modified, IReadOnlySet<string> Created) Track(
        State state, TArgs args, long? seed, bool? create, bool? modify, bool? ignore)
    {
        var outcome = NjModule.call(For(seed, create, modify, ignore), function, state, args);
        return (outcome.State, outcome.Output, KeySet(outcome.Read), KeySet(outcome.Modified), KeySet(outcome.Created));
    }

    public State Init(State state, TArgs args, long? seed)
    {
        var o = seed is { } s ? OptionsModule.withSeed(s, options) : options;
        return FSharpFunc<State, TArgs>.InvokeFast(NjModule.initWith(o, function), state, args);
    }

    public State InitShapes(State state, TArgs args, long? seed)
    {
        var o = seed is { } s ? OptionsModule.withSeed(s, options) : options;
        return FSharpFunc<State, TArgs>.InvokeFast(NjModule.initShapesWith(o, function), state, args);
    }

    /// <summary>An F# set of keys as a read-only set in the same (ordinal) order.</summary>
    private static IReadOnlySet<string> KeySet(IEnumerable<string> keys) => ImmutableSortedSet.CreateRange(StringComparer.Ordinal, keys);
}

/// <summary>Builds <see cref="Purified{TArgs, TResult}"/> with a null check naming the parameter.</summary>
internal static class Purified
{
    public static Purified<TArgs, TResult> Of<TArgs, TResult>(Delegate? original, Func<TArgs, TResult> call, bool nested, string? name, bool donate = false, string? rngStream = null)
    {
        ArgumentNullException.ThrowIfNull(original, "function");
        return new Purified<TArgs, TResult>(original, call, nested, name, donate, rngStream);
    }
}
