<?php

namespace Tidings\Laravel\Tests;

use Tidings\Laravel\Tests\Fixtures\User;

class BellTest extends TestCase
{
    public function testTheBellComponentRendersTheScriptTheElementAndAFreshToken(): void
    {
        $html = $this->render('<x-tidings-bell :user="$user" theme="dark" />', ['user' => new User(['id' => 'laravel-bell'])]);
        $url = rtrim(getenv('TIDINGS_URL'), '/');

        $this->assertStringContainsString("<script type=\"module\" src=\"{$url}/static/tidings-bell.js\"></script>", $html);
        $this->assertMatchesRegularExpression('/<tidings-bell base-url="' . preg_quote($url, '/') . '" token="([\w-]+\.[\w-]+\.[\w-]+)"/', $html);
        $this->assertStringContainsString('data-token-url="/tidings/token"', $html);
        $this->assertStringContainsString('theme="dark"', $html);
        preg_match('/token="([^"]+)"/', $html, $match);
        $claims = json_decode(base64_decode(strtr(explode('.', $match[1])[1], '-_', '+/')), true);
        $this->assertSame('laravel-bell', $claims['sub']);
    }

    public function testNothingForAGuest(): void
    {
        $this->assertSame('', trim($this->render('<x-tidings-bell />', [])));
    }

    private function render(string $blade, array $data): string
    {
        $path = sys_get_temp_dir() . '/tidings-laravel-' . getmypid() . '/page.blade.php';
        file_put_contents($path, $blade);

        return $this->app->make('view')->file($path, $data)->render();
    }
}
