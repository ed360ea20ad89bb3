using System.Reflection;
using Xunit;

namespace Ninjax.CSharp.Tests;

/// <summary>No F# type (FSharpFunc, FSharpMap, FSharpList, FSharpOption, Unit, ...) appears on the public surface
/// C# users touch: the facade assembly and the core types they subclass or hold.</summary>
public class PublicSurfaceTests
{
    private static readonly Assembly FSharpCore = typeof(Microsoft.FSharp.Core.Unit).Assembly;

    private const BindingFlags Visible =
        BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>Types C# code reaches from the facade's API or writes itself.</summary>
    private static readonly Type[] CoreTypesUsersTouch =
    {
        typeof(Module), typeof(State), typeof(Variable), typeof(Dense), typeof(Conv2D), typeof(LayerNormalization), typeof(BatchNormalization), typeof(Embed), typeof(TorchModule<>),
    };

    /// <summary>True when the type is, or is built from, a type of FSharp.Core.</summary>
    private static bool MentionsFSharp(Type type)
    {
        if (type.HasElementType) return MentionsFSharp(type.GetElementType()!);
        if (type.IsGenericParameter) return type.GetGenericParameterConstraints().Any(MentionsFSharp);
        if (type.Assembly == FSharpCore) return true;
        return type.IsGenericType && type.GetGenericArguments().Any(MentionsFSharp);
    }

    private static bool IsVisible(MethodBase? m) => m is not null && (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly);

    /// <summary>Every member of <paramref name="type"/> that C# code can see and that mentions an F# type.</summary>
    private static IEnumerable<string> Leaks(Type type)
    {
        var name = type.FullName;
        if (type.BaseType is { } b && MentionsFSharp(b)) yield return $"{name}: base type {b}";
        foreach (var i in type.GetInterfaces().Where(MentionsFSharp)) yield return $"{name}: implements {i}";
        foreach (var g in type.GetGenericArguments().Where(MentionsFSharp)) yield return $"{name}: type parameter {g}";
        foreach (var member in type.GetMembers(Visible))
        {
            var types = member switch
            {
                MethodBase m when IsVisible(m) =>
                    m.GetParameters().Select(p => p.ParameterType)
                        .Concat(m is MethodInfo mi ? new[] { mi.ReturnType }.Concat(mi.IsGenericMethod ? mi.GetGenericArguments() : Type.EmptyTypes) : Type.EmptyTypes),
                PropertyInfo p when IsVisible(p.GetMethod) || IsVisible(p.SetMethod) =>
                    new[] { p.PropertyType }.Concat(p.GetIndexParameters().Select(i => i.ParameterType)),
                FieldInfo f when f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly => new[] { f.FieldType },
                EventInfo e when IsVisible(e.AddMethod) => new[] { e.EventHandlerType! },
                _ => Type.EmptyTypes,
            };
            foreach (var t in types.Where(MentionsFSharp)) yield return $"{name}.{member.Name}: {t}";
        }
    }

    private static IEnumerable<Type> FacadeTypes => typeof(Nj).Assembly.GetExportedTypes();

    [Fact]
    public void The_facade_assembly_exposes_no_FSharp_type()
    {
        var types = FacadeTypes.ToArray();
        Assert.Contains(typeof(Nj), types);
        Assert.Contains(typeof(States), types);
        Assert.Contains(typeof(PureFunc<,,>), types);
        Assert.Empty(types.SelectMany(Leaks));
    }

    [Fact]
    public void The_core_types_CSharp_users_touch_expose_no_FSharp_type()
    {
        Assert.Empty(CoreTypesUsersTouch.SelectMany(Leaks));
    }

    [Fact]
    public void OptimizerModule_replaces_every_FSharp_shaped_member_of_the_FSharp_Optimizer()
    {
        // C# code holds an OptimizerModule, which extends the F# Optimizer (whose Minimize takes an F# function and
        // list, and whose Apply returns an F# option). Every such member must have a C# counterpart of the same name.
        var fsharpShaped = typeof(Optimizer).GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            .Where(m => Leaks(typeof(Optimizer)).Any(l => l.StartsWith($"{typeof(Optimizer).FullName}.{m.Name}:")))
            .Select(m => m.Name).Distinct().OrderBy(n => n).ToArray();
        Assert.Equal(new[] { "Apply", "Minimize", "MinimizeAux" }, fsharpShaped);
        var declared = typeof(OptimizerModule).GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly);
        foreach (var name in fsharpShaped.Append("Transform"))
            Assert.Contains(declared, m => m.Name == name);
        Assert.Equal(typeof(GradientTransform), typeof(OptimizerModule).GetProperty("Transform", BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)!.PropertyType);
        Assert.Empty(Leaks(typeof(OptimizerModule)));
    }

    [Fact]
    public void The_check_finds_FSharp_types_where_there_are_some()
    {
        // The F# options record and the F# State module do expose F# types; the check must see them.
        Assert.Contains(Leaks(typeof(Options)), l => l.Contains("FSharpOption"));
        Assert.Contains(Leaks(typeof(NjModule)), l => l.Contains("FSharpFunc"));
        Assert.Contains(Leaks(typeof(StateModule)), l => l.Contains("FSharpList"));
    }

    [Fact]
    public void The_facade_exposes_only_its_documented_entry_points()
    {
        // C# 14 extension blocks (TorchModules) compile to nested marker types with unspeakable names ('<G>$...'),
        // which no C# code can name; they are checked for F# types above like every other exported type.
        var names = FacadeTypes.Where(t => !typeof(Delegate).IsAssignableFrom(t) && !t.Name.StartsWith('<')).Select(t => t.Name).OrderBy(n => n);
        Assert.Equal(new[] { "GradientTransform", "Nj", "OptimizerModule", "Optimizers", "Schedules", "States", "StepMetrics", "TorchModules" }, names);
    }
}
