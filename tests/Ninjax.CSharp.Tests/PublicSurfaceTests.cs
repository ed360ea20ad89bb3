using System.Reflection;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Xunit;

namespace Ninjax.CSharp.Tests;

/// <summary>No F# type on any surface a C# user touches. The surface is every public type of Ninjax.CSharp and every
/// public type of Ninjax.Fs that is not F#-only, with all their visible members, inherited ones included, and every
/// Ninjax type those members mention, transitively. On it no signature may mention a type of FSharp.Core
/// (FSharpFunc, FSharpOption, FSharpList, FSharpMap, FSharpSet, Unit, ...), reach an F#-only type or F# module, or
/// name a method or property in anything but PascalCase.</summary>
public class PublicSurfaceTests
{
    private static readonly Assembly FSharpCore = typeof(Unit).Assembly;
    private static readonly Assembly Core = typeof(State).Assembly;
    private static readonly Assembly Facade = typeof(Nj).Assembly;

    /// <summary>The types of Ninjax.Fs that keep F# shapes, beside its F# modules, and the C# route for what each does.
    /// F# code uses them; nothing a C# user needs lives only there.</summary>
    public static readonly IReadOnlyDictionary<Type, string> FSharpOnly = new Dictionary<Type, string>
    {
        [typeof(Options)] = "the named arguments of Nj.Pure, Nj.PureTracked and Nj.Init",
        [typeof(Env)] = "the monad's environment; C# code runs impurely, through Nj and Module",
        [typeof(Nj<>)] = "the monad; C# code runs impurely, through Nj and Module",
        [typeof(NjBuilder)] = "the monad's computation expression",
        [typeof(Frame)] = "the impure interpreter's frame",
        [typeof(Outcome<>)] = "Nj.PureTracked returns a value tuple with IReadOnlySet key sets",
        [typeof(Gradient<>)] = "Nj.Grad, Nj.GradAux and Nj.GradInputs return value tuples",
        [typeof(GradientTransformation)] = "GradientTransform (Optimizers)",
        [typeof(FusedStepInput)] = "part of GradientTransformation's fused step; GradientTransform runs it",
        [typeof(FusedStepResult)] = "part of GradientTransformation's fused step; StepMetrics.GradNorm reports its sum of squares",
        [typeof(SgdOptions)] = "Optimizers.Sgd's named arguments",
        [typeof(AdamOptions)] = "Optimizers.Adam's and AdamW's named arguments",
        [typeof(RmsPropOptions)] = "Optimizers.RmsProp's named arguments",
        [typeof(OptimizerMetrics)] = "StepMetrics",
        [typeof(Optimizer)] = "OptimizerModule",
        [typeof(StateDiff)] = "States.Diff returns a StateDifference",
        [typeof(CheckpointMetadata)] = "Checkpoints (step: and strings: arguments, CheckpointInfo)",
    };

    /// <summary>F# modules written for C# as well: PascalCase compiled names and .NET shapes.</summary>
    public static readonly Type[] CSharpFacingModules = [typeof(Ops), typeof(Init), typeof(DataParallel), typeof(MovingAverage)];

    private const BindingFlags Everything =
        BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.FlattenHierarchy;

    private static bool IsKind(Type t, SourceConstructFlags kind) =>
        t.GetCustomAttributes<CompilationMappingAttribute>().Any(m => (m.SourceConstructFlags & SourceConstructFlags.KindMask) == kind);

    private static bool IsFSharpModule(Type t) => IsKind(t, SourceConstructFlags.Module);

    private static bool IsUnion(Type t) => IsKind(t, SourceConstructFlags.SumType);

    private static bool IsNinjax(Type t) => t.Assembly == Core || t.Assembly == Facade;

    private static bool IsFramework(Type t) =>
        t.Assembly.GetName().Name is { } n && (n.StartsWith("System") || n.StartsWith("Microsoft.") || n == "TorchSharp" || n == "FSharp.Core");

    /// <summary>An F#-only type of Ninjax.Fs (or a type nested in one): listed, or an F# module not written for C#.</summary>
    private static bool IsFSharpOnly(Type t)
    {
        var definition = t.IsGenericType ? t.GetGenericTypeDefinition() : t;
        for (var d = definition; d is not null; d = d.DeclaringType)
            if (FSharpOnly.ContainsKey(d) || (IsFSharpModule(d) && !CSharpFacingModules.Contains(d)))
                return true;
        return false;
    }

    /// <summary>The types a signature type is built from: itself, element types, generic arguments, constraints.</summary>
    private static IEnumerable<Type> Parts(Type type, HashSet<Type>? seen = null)
    {
        seen ??= [];
        if (!seen.Add(type)) yield break;
        if (type.HasElementType)
        {
            foreach (var p in Parts(type.GetElementType()!, seen)) yield return p;
            yield break;
        }
        if (type.IsGenericParameter)
        {
            foreach (var c in type.GetGenericParameterConstraints())
            foreach (var p in Parts(c, seen)) yield return p;
            yield break;
        }
        yield return type;
        if (type.IsGenericType)
            foreach (var a in type.GetGenericArguments())
            foreach (var p in Parts(a, seen)) yield return p;
    }

    private static bool IsVisible(MethodBase? m) => m is not null && (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly);

    /// <summary>The visible members of a type (inherited ones included) with the types their signatures mention.</summary>
    private static IEnumerable<(MemberInfo Member, IEnumerable<Type> Types)> Signatures(Type type)
    {
        foreach (var member in type.GetMembers(Everything))
        {
            IEnumerable<Type>? types = member switch
            {
                MethodBase m when IsVisible(m) =>
                    m.GetParameters().Select(p => p.ParameterType)
                        .Concat(m is MethodInfo mi ? [mi.ReturnType, .. mi.IsGenericMethod ? mi.GetGenericArguments() : []] : []),
                PropertyInfo p when IsVisible(p.GetMethod) || IsVisible(p.SetMethod) =>
                    [p.PropertyType, .. p.GetIndexParameters().Select(i => i.ParameterType)],
                FieldInfo f when f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly => [f.FieldType],
                EventInfo e when IsVisible(e.AddMethod) => [e.EventHandlerType!],
                _ => null,
            };
            if (types is not null) yield return (member, types);
        }
    }

    /// <summary>Names C# expects in PascalCase: methods and properties a C# user calls, not accessors, operators,
    /// compiler-generated members, or the fields of F# union cases (which F# names in camelCase).</summary>
    private static bool ShouldBePascalCase(Type owner, MemberInfo member) =>
        member is MethodInfo { IsSpecialName: false } or PropertyInfo
        && member.DeclaringType is { } declaring && !IsFramework(declaring)
        && !(owner.DeclaringType is { } outer && IsUnion(outer))
        && !member.Name.Contains('<') && !member.Name.Contains('$') && !member.Name.Contains('.')
        && !(member is MethodInfo && new[] { "get_", "set_", "add_", "remove_", "op_" }.Any(member.Name.StartsWith));

    /// <summary>Every problem on the C# surface reachable from <paramref name="roots"/>: F# types in signatures,
    /// inherited from or implemented, F#-only types or F# modules reached, and camelCase names.</summary>
    public static IReadOnlyList<string> Problems(IEnumerable<Type> roots)
    {
        var problems = new List<string>();
        var queue = new Queue<Type>(roots);
        var visited = new HashSet<Type>();
        void Reach(Type from, string where, Type type)
        {
            foreach (var part in Parts(type))
            {
                if (part.Assembly == FSharpCore) problems.Add($"{from.FullName}.{where}: {type} (an F# type)");
                else if (IsNinjax(part))
                {
                    var definition = part.IsGenericType ? part.GetGenericTypeDefinition() : part;
                    if (IsFSharpOnly(definition)) problems.Add($"{from.FullName}.{where}: reaches the F#-only {definition.FullName}");
                    else queue.Enqueue(definition);
                }
            }
        }
        while (queue.Count > 0)
        {
            var type = queue.Dequeue();
            if (!visited.Add(type)) continue;
            for (var b = type.BaseType; b is not null && b != typeof(object); b = b.BaseType)
                Reach(type, "(base type)", b);
            foreach (var i in type.GetInterfaces()) Reach(type, "(interface)", i);
            foreach (var (member, types) in Signatures(type))
            {
                foreach (var t in types) Reach(type, member.Name, t);
                if (ShouldBePascalCase(type, member) && !char.IsUpper(member.Name[0]))
                    problems.Add($"{type.FullName}.{member.Name}: not PascalCase");
            }
        }
        return problems.Distinct().ToArray();
    }

    /// <summary>The roots of the C# surface: all of Ninjax.CSharp, and Ninjax.Fs less its F#-only types and modules.</summary>
    public static IEnumerable<Type> CSharpSurface() =>
        Facade.GetExportedTypes().Concat(Core.GetExportedTypes().Where(t => !IsFSharpOnly(t)));

    [Fact]
    public void The_CSharp_surface_of_both_assemblies_has_no_FSharp_type()
    {
        var roots = CSharpSurface().ToArray();
        // What C# users subclass or hold is on it, and so are the C# routes.
        foreach (var t in new[]
                 {
                     typeof(Module), typeof(State), typeof(Variable), typeof(Dense), typeof(Conv2D), typeof(LayerNormalization), typeof(BatchNormalization), typeof(Embed),
                     typeof(TorchModule<>), typeof(Target), typeof(SummaryRow), typeof(SizeTotals), typeof(CheckpointEntry),
                     typeof(CheckpointMismatch), typeof(CheckpointMismatchException), typeof(Ops), typeof(Init),
                     typeof(Nj), typeof(States), typeof(OptimizerModule), typeof(Optimizers), typeof(Schedules),
                     typeof(Communicator), typeof(DataParallel), typeof(BatchShare), typeof(CollectiveStatistics),
                 })
            Assert.Contains(t, roots);
        var problems = Problems(roots);
        Assert.True(problems.Count == 0, "F# shapes on the C# surface:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void Every_FSharp_only_type_has_FSharp_shapes_and_the_CSharp_route_exists()
    {
        // An F#-only type that has no F# shape belongs on the C# surface: keep the list honest.
        foreach (var (type, route) in FSharpOnly)
        {
            Assert.False(string.IsNullOrWhiteSpace(route));
            Assert.True(Signatures(type).Any(s => s.Types.SelectMany(t => Parts(t)).Any(p => p.Assembly == FSharpCore))
                        || type == typeof(Optimizer) || type == typeof(Frame),
                $"{type.FullName} is listed as F#-only but shows no F# type");
        }
    }

    /// <summary>A module a careless helper might add: its members put F# types back on the surface.</summary>
    public sealed class PlantedLeak : Module
    {
        /// <summary>An F# list.</summary>
        public FSharpList<string> Keys => FSharpList<string>.Empty;

        /// <summary>An F# option.</summary>
        public FSharpOption<long> Step => FSharpOption<long>.None;

        /// <summary>An F# function.</summary>
        public void Map(FSharpFunc<long, double> schedule) { }

        /// <summary>An F#-only Ninjax type.</summary>
        public Options Options => OptionsModule.defaults;

        /// <summary>A camelCase member.</summary>
        public int count => 0;

        /// <summary>A planted leak with a name.</summary>
        public PlantedLeak() : base("planted") { }
    }

    [Fact]
    public void The_check_fails_when_an_FSharp_type_is_put_back()
    {
        var problems = Problems([typeof(PlantedLeak)]);
        Assert.Contains(problems, p => p.Contains(".Keys:") && p.Contains("FSharpList"));
        Assert.Contains(problems, p => p.Contains(".Step:") && p.Contains("FSharpOption"));
        Assert.Contains(problems, p => p.Contains(".Map:") && p.Contains("FSharpFunc"));
        Assert.Contains(problems, p => p.Contains(".Options:") && p.Contains("F#-only Ninjax.Options"));
        Assert.Contains(problems, p => p.Contains(".count: not PascalCase"));
        // Inherited members count: the F# Optimizer's Minimize takes an F# function and list.
        var viaOptimizer = Problems([typeof(Optimizer)]);
        Assert.Contains(viaOptimizer, p => p.Contains(".Minimize:") && p.Contains("FSharpFunc"));
        // And the F# modules C# is not meant to use are F#-only.
        Assert.True(IsFSharpOnly(typeof(StateModule)));
        Assert.True(IsFSharpOnly(typeof(CheckpointMetadataModule)));
        Assert.False(IsFSharpOnly(typeof(Ops)));
    }

    [Fact]
    public void OptimizerModule_inherits_nothing_FSharp_shaped()
    {
        // The F# Optimizer and the C# OptimizerModule share a base with no F#-shaped public member.
        Assert.False(typeof(OptimizerModule).IsSubclassOf(typeof(Optimizer)));
        Assert.Empty(Problems([typeof(OptimizerModule)]));
        var names = typeof(OptimizerModule).GetMembers(BindingFlags.Public | BindingFlags.Instance).Select(m => m.Name).ToHashSet();
        foreach (var name in new[] { "Minimize", "MinimizeAux", "Apply", "Transform", "Path", "Get", "Put", "Sub" })
            Assert.Contains(name, names);
    }
}
